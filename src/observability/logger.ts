import pino, { type Logger } from "pino";

/**
 * JSON logs on stderr (stdout stays clean for the CLI's output). Redaction covers every place a
 * credential could appear, as a second line of defence: no code path logs a secret on purpose.
 */
export function createLogger(level: string): Logger {
  return pino(
    {
      level,
      base: { service: "zpk", pid: process.pid },
      redact: {
        paths: [
          "authorization",
          "*.authorization",
          "headers.authorization",
          'headers["x-api-key"]',
          "*.headers.authorization",
          '*.headers["x-api-key"]',
          "cookie",
          "headers.cookie",
          "*.headers.cookie",
          '*.headers["set-cookie"]',
          "secret",
          "*.secret",
          "key",
          "internalToken",
          "INTERNAL_TOKEN",
        ],
        censor: "[redacted]",
      },
    },
    pino.destination({ fd: 2, sync: false }),
  );
}
