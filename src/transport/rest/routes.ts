import { type DescMethod, getOption, hasOption } from "@bufbuild/protobuf";
import { ApiKeyService } from "../../../gen/apikeys/v1/api_key_service_pb.js";
import { http } from "../../../gen/google/api/annotations_pb.js";

/**
 * The REST routes, read from the `google.api.http` options in the proto: the proto is the one
 * place a route is declared. Only the path-template subset we use is supported (`{field}`
 * segments), which is checked at start-up.
 */
export interface RestRoute {
  method: DescMethod;
  httpMethod: string;
  template: string;
  pattern: RegExp;
  params: string[];
  /** `*` when the whole request (less path params) comes from the JSON body; "" for none. */
  body: string;
  /** The response field sent as the body; "" for the whole response. */
  responseBody: string;
}

export function restRoutes(): RestRoute[] {
  return ApiKeyService.methods.filter((m) => hasOption(m, http)).map((method) => {
    const rule = getOption(method, http);
    const { case: verb, value } = rule.pattern;
    if (verb === undefined || verb === "custom" || typeof value !== "string") {
      throw new Error(`unsupported http rule on ${method.name}`);
    }
    const params: string[] = [];
    const source = value.replace(/\{([a-z_]+)\}|[^{}]+/g, (seg, param?: string) => {
      if (param) {
        params.push(param);
        return "([^/]+)";
      }
      return seg.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    });
    return {
      method,
      httpMethod: verb.toUpperCase(),
      template: value,
      pattern: new RegExp(`^${source}$`),
      params,
      body: rule.body,
      responseBody: rule.responseBody,
    };
  });
}
