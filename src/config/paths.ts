/** Where the database and the control socket live: flag, then environment, then default. */
export const DEFAULT_DB_PATH = './data/sipctl.db';
export const DEFAULT_CONTROL_PATH = './data/sipctl.sock';

export function resolveDbPath(flag?: string): string {
  return flag ?? process.env.SIPCTL_DB ?? DEFAULT_DB_PATH;
}

export function resolveControlPath(flag?: string): string {
  return flag ?? process.env.SIPCTL_CONTROL ?? DEFAULT_CONTROL_PATH;
}
