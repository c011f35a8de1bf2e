import { pino, type Logger } from 'pino';

/** Process-wide logger: JSON lines on stderr so stdout stays free for access logs. */
export let log: Logger = pino({ level: process.env.STRAIT_LOG_LEVEL ?? 'info', base: { pid: process.pid } }, pino.destination(2));

export function setLogLevel(level: string): void {
  log.level = level;
}
