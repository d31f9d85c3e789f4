import { describe, expect, it } from "vitest";
import { decodePageToken, pageOf } from "../../src/domain/page-token.js";

const ID = /^row_[0-9]+$/;
const rows = (n: number) => Array.from({ length: n }, (_, i) => ({ id: `row_${100 - i}` }));

describe("pageOf", () => {
  it("a read of one row more than the page has a next page, whose token continues after the page's last row", () => {
    const read = rows(4);
    const page = pageOf(3, read);
    expect(page.items.map((r) => r.id)).toEqual(["row_100", "row_99", "row_98"]);
    expect(page.nextPageToken).not.toBeNull();
    expect(decodePageToken(page.nextPageToken!, ID)).toBe("row_98");
  });

  it("a read that fills the page exactly is the last page, and the page is the read itself", () => {
    const read = rows(3);
    const page = pageOf(3, read);
    expect(page.nextPageToken).toBeNull();
    expect(page.items).toBe(read);
  });

  it("a short read and an empty one are last pages", () => {
    expect(pageOf(3, rows(1))).toEqual({ items: rows(1), nextPageToken: null });
    expect(pageOf(3, [])).toEqual({ items: [], nextPageToken: null });
  });
});
