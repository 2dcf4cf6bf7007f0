// Character classes of the RFC 3261 grammar (section 25), as a lookup table
// indexed by char code (latin1: one char = one octet). Internal to sip/.

export const C_ALNUM = 1 << 0; // ALPHA / DIGIT
export const C_MARK = 1 << 1; // "-" / "_" / "." / "!" / "~" / "*" / "'" / "(" / ")"
export const C_USER = 1 << 2; // user-unreserved: "&" / "=" / "+" / "$" / "," / ";" / "?" / "/"
export const C_PASS = 1 << 3; // password extras: "&" / "=" / "+" / "$" / ","
export const C_PARAM = 1 << 4; // param-unreserved: "[" / "]" / "/" / ":" / "&" / "+" / "$"
export const C_HNV = 1 << 5; // hnv-unreserved: "[" / "]" / "/" / "?" / ":" / "+" / "$"
export const C_TOKEN = 1 << 6; // token: alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~"
export const C_WORD = 1 << 7; // word (Call-ID): token chars plus ( ) < > : \ DQUOTE / [ ] ? { }
export const C_HOST = 1 << 8; // hostname chars: alphanum / "-" / "."
export const C_RESERVED = 1 << 9; // RFC 2396 reserved: ; / ? : @ & = + $ ,
export const C_SCHEME = 1 << 10; // scheme chars after the first: ALPHA / DIGIT / "+" / "-" / "."
export const C_URIC = 1 << 11; // uric (RFC 2396) plus "[" "]" and "%"
export const C_HEX = 1 << 12;

export const CHARS = new Uint16Array(256);

function mark(chars: string, flag: number): void {
  for (let i = 0; i < chars.length; i++) CHARS[chars.charCodeAt(i)] |= flag;
}

const ALPHA = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
const DIGIT = '0123456789';
mark(ALPHA + DIGIT, C_ALNUM | C_TOKEN | C_WORD | C_HOST | C_SCHEME | C_URIC);
mark("-_.!~*'()", C_MARK | C_URIC);
mark('&=+$,;?/', C_USER);
mark('&=+$,', C_PASS);
mark('[]/:&+$', C_PARAM);
mark('[]/?:+$', C_HNV);
mark("-.!%*_+`'~", C_TOKEN | C_WORD);
mark('()<>:\\"/[]?{}', C_WORD);
mark('-.', C_HOST);
mark(';/?:@&=+$,', C_RESERVED | C_URIC);
mark('+-.', C_SCHEME);
mark('[]%', C_URIC);
mark(DIGIT + 'abcdefABCDEF', C_HEX);

/** true when every char of s[from, to) has one of the flags in mask; false on empty */
export function allChars(s: string, mask: number, from = 0, to = s.length): boolean {
  if (to <= from) return false;
  for (let i = from; i < to; i++) {
    const c = s.charCodeAt(i);
    if (c > 255 || (CHARS[c] & mask) === 0) return false;
  }
  return true;
}

export function isToken(s: string, from = 0, to = s.length): boolean {
  return allChars(s, C_TOKEN, from, to);
}

/**
 * Validates a URI component made of unreserved chars, chars in `mask`, and
 * "%" HEX HEX escapes. Empty is accepted (callers check emptiness).
 */
export function isEscapedPart(s: string, mask: number, from = 0, to = s.length): boolean {
  const m = mask | C_ALNUM | C_MARK;
  for (let i = from; i < to; i++) {
    const c = s.charCodeAt(i);
    if (c === 37 /* % */) {
      if (i + 2 >= to) return false;
      const h1 = s.charCodeAt(i + 1);
      const h2 = s.charCodeAt(i + 2);
      if (h1 > 255 || h2 > 255 || (CHARS[h1] & C_HEX) === 0 || (CHARS[h2] & C_HEX) === 0) return false;
      i += 2;
      continue;
    }
    if (c > 255 || (CHARS[c] & m) === 0) return false;
  }
  return true;
}

export function isWs(c: number): boolean {
  return c === 32 || c === 9;
}

export function hexVal(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 65 && c <= 70) return c - 55;
  if (c >= 97 && c <= 102) return c - 87;
  return -1;
}
