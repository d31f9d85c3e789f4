import { createHash } from "node:crypto";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import { build } from "esbuild";

/** One built file of the page, kept in memory with its gzip form and a content ETag. */
export interface Asset {
  body: Buffer;
  gzip: Buffer;
  type: string;
  etag: string;
}

export interface DashboardBundle {
  js: Asset;
  css: Asset;
}

const UI_DIR = fileURLToPath(new URL("./ui/", import.meta.url));

const asset = (body: Buffer, type: string): Asset => ({
  body,
  gzip: gzipSync(body, { level: 9 }),
  type,
  etag: `"${createHash("sha256").update(body).digest("base64url").slice(0, 22)}"`,
});

/**
 * Builds the page's script and stylesheet with esbuild, in memory, at server start: the browser
 * code (ui/*.ts, the generated ApiKeyService client, connect-web, uPlot) is bundled and minified
 * so the page needs nothing from elsewhere (no CDN) and there is no build step to forget. It
 * takes a fraction of a second once per process; nothing is written to disk.
 */
export async function buildDashboardBundle(): Promise<DashboardBundle> {
  const result = await build({
    entryPoints: { app: `${UI_DIR}main.ts`, style: `${UI_DIR}styles.css` },
    bundle: true,
    minify: true,
    format: "iife",
    target: ["es2022", "chrome110", "firefox110", "safari16"],
    platform: "browser",
    write: false,
    outdir: "/dashboard",
    legalComments: "none",
    logLevel: "silent",
    charset: "utf8",
  });
  const js = result.outputFiles.find((f) => f.path.endsWith(".js"));
  const css = result.outputFiles.find((f) => f.path.endsWith(".css"));
  if (!js || !css) throw new Error("dashboard bundle: esbuild produced no script or stylesheet");
  return {
    js: asset(Buffer.from(js.contents), "text/javascript; charset=utf-8"),
    css: asset(Buffer.from(css.contents), "text/css; charset=utf-8"),
  };
}
