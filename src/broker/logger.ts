// Structured JSON logs (pino). Redaction is a second line of defence: code never passes
// secrets, tokens or keys to the logger, and these paths are censored if it ever does.
import { pino, type Logger, type DestinationStream } from 'pino'

export const REDACT_PATHS = [
  'token', '*.token', 'jwe', '*.jwe', 'secret', '*.secret', 'value', '*.value', 'text', '*.text',
  'privateKey', '*.privateKey', 'd', '*.d', 'authorization', '*.authorization', 'dpop', '*.dpop',
  'headers.authorization', 'req.headers.authorization', 'req.headers.dpop', 'password', '*.password',
]

export function createLogger(level: string, dest?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: { svc: 'keyward', pid: process.pid },
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    dest,
  )
}
