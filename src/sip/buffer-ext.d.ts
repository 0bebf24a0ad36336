// Node's Buffer has had fast, check-free slice decoders since v0.x (`latin1Slice`,
// `utf8Slice`) and encoder (`latin1Write`); they are not in @types/node. The parser uses them on the hot path.
declare global {
  interface Buffer {
    latin1Slice(start: number, end: number): string;
    utf8Slice(start: number, end: number): string;
    latin1Write(text: string, offset: number): number;
  }
}
export {};
