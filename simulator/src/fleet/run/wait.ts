/** The pause between two polls of a phase's wait loops. */
export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
