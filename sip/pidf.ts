// PIDF (RFC 3863) presence documents: built for NOTIFY bodies, parsed from PUBLISH bodies.
//
// Phones publish small documents, but with namespace prefixes and extensions (RPID, data model)
// that we must skip, not choke on. A general XML library would be a large dependency for this, so
// this is a strict, small XML reader: well-formed elements, attributes, namespaces, character and
// the five predefined entity references, comments, CDATA, the XML declaration. It refuses a
// DOCTYPE outright (no entity expansion, so no "billion laughs") and anything over a size and
// depth limit; every fault is a PidfError.
import { DotsError } from '../core/errors.ts';

export const PIDF_NS = 'urn:ietf:params:xml:ns:pidf';
export const PIDF_CONTENT_TYPE = 'application/pidf+xml';
/** Larger than any real PUBLISH body (they are a few hundred bytes); bounds the parser's work. */
export const MAX_PIDF_BYTES = 16 * 1024;
const MAX_DEPTH = 16;
const MAX_TUPLES = 32;
const XML_NS = 'http://www.w3.org/XML/1998/namespace';

export class PidfError extends DotsError {
  override name = 'PidfError';
}

export type Basic = 'open' | 'closed';

export interface PidfTuple {
  id: string;
  /** absent when the tuple has no <basic> (RFC 3863 allows it) */
  basic?: Basic;
  contact?: string;
  notes: string[];
}

export interface Presence {
  /** the presentity, a pres: or sip: URI */
  entity: string;
  tuples: PidfTuple[];
  /** notes of the presence element itself */
  notes: string[];
}

export interface PresenceInput {
  entity: string;
  basic: Basic;
  note?: string;
  /** tuple id (an XML ID: a letter or _ then letters, digits, . - _); default "t0" */
  tupleId?: string;
  contact?: string;
}

/** Escapes text and attribute values (quotes too, so one function serves both). */
export function xmlEscape(s: string): string {
  // Characters XML 1.0 cannot carry at all (controls other than tab, LF, CR) are refused, not dropped.
  if (/[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/.test(s)) throw new PidfError('text holds a character XML cannot carry');
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&apos;');
}

const ID_RE = /^[A-Za-z_][A-Za-z0-9._-]*$/;

/** A PIDF document with one tuple (the presentity's one status) and an optional note. */
export function buildPidf(p: PresenceInput): string {
  const id = p.tupleId ?? 't0';
  if (!ID_RE.test(id)) throw new PidfError(`tuple id "${id}" is not an XML ID`);
  if (p.entity.length === 0) throw new PidfError('a presentity needs an entity URI');
  const lines = [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<presence xmlns="${PIDF_NS}" entity="${xmlEscape(p.entity)}">`,
    `<tuple id="${id}">`,
    `<status><basic>${p.basic}</basic></status>`,
  ];
  if (p.contact !== undefined) lines.push(`<contact>${xmlEscape(p.contact)}</contact>`);
  lines.push('</tuple>');
  if (p.note !== undefined) lines.push(`<note>${xmlEscape(p.note)}</note>`);
  lines.push('</presence>', '');
  return lines.join('\r\n');
}

// ---- a strict, small XML reader ----------------------------------------------------------------

interface XmlElement {
  ns: string;
  local: string;
  attrs: Map<string, string>; // "{ns}local" or "local" for unprefixed attributes
  children: XmlElement[];
  text: string;
}

const NAME = /[A-Za-z_][A-Za-z0-9._-]*(?::[A-Za-z_][A-Za-z0-9._-]*)?/y;

class Reader {
  pos = 0;
  constructor(private readonly s: string) {}

  fail(msg: string): never {
    throw new PidfError(`malformed PIDF at offset ${this.pos}: ${msg}`);
  }

  startsWith(t: string): boolean {
    return this.s.startsWith(t, this.pos);
  }

  skipSpace(): void {
    while (this.pos < this.s.length && ' \t\r\n'.includes(this.s[this.pos])) this.pos++;
  }

  /** Skips comments, processing instructions and white space between elements. */
  skipMisc(): void {
    for (;;) {
      this.skipSpace();
      if (this.startsWith('<!--')) {
        const end = this.s.indexOf('-->', this.pos + 4);
        if (end < 0) this.fail('unterminated comment');
        this.pos = end + 3;
      } else if (this.startsWith('<?')) {
        const end = this.s.indexOf('?>', this.pos + 2);
        if (end < 0) this.fail('unterminated processing instruction');
        this.pos = end + 2;
      } else return;
    }
  }

  name(): string {
    NAME.lastIndex = this.pos;
    const m = NAME.exec(this.s);
    if (m === null) this.fail('expected a name');
    this.pos += m[0].length;
    return m[0];
  }

  expect(t: string): void {
    if (!this.startsWith(t)) this.fail(`expected "${t}"`);
    this.pos += t.length;
  }

  /** Text with references decoded, up to (not including) `stop`. */
  decodeText(raw: string): string {
    return raw.replace(/&([^;]{0,10});|&/g, (m, ref: string | undefined) => {
      if (ref === undefined) this.fail('a bare "&"');
      switch (ref) {
        case 'lt':
          return '<';
        case 'gt':
          return '>';
        case 'amp':
          return '&';
        case 'quot':
          return '"';
        case 'apos':
          return "'";
      }
      const num = /^#([0-9]{1,7})$/.exec(ref) ?? /^#x([0-9A-Fa-f]{1,6})$/.exec(ref);
      if (num === null) this.fail(`unknown entity reference ${m}`);
      const cp = parseInt(num[1], ref.startsWith('#x') ? 16 : 10);
      const ok = cp === 0x9 || cp === 0xa || cp === 0xd || (cp >= 0x20 && cp <= 0xd7ff) || (cp >= 0xe000 && cp <= 0xfffd) || (cp >= 0x10000 && cp <= 0x10ffff);
      if (!ok) this.fail(`character reference ${m} is not an XML character`);
      return String.fromCodePoint(cp);
    });
  }

  element(scope: Map<string, string>, depth: number): XmlElement {
    if (depth > MAX_DEPTH) this.fail('nested too deep');
    this.expect('<');
    const qname = this.name();
    const rawAttrs: Array<[string, string]> = [];
    for (;;) {
      const before = this.pos;
      this.skipSpace();
      if (this.startsWith('/>') || this.startsWith('>')) break;
      if (this.pos === before) this.fail('expected white space before an attribute');
      const an = this.name();
      this.skipSpace();
      this.expect('=');
      this.skipSpace();
      const q = this.s[this.pos];
      if (q !== '"' && q !== "'") this.fail('attribute value must be quoted');
      const end = this.s.indexOf(q, this.pos + 1);
      if (end < 0) this.fail('unterminated attribute value');
      const rawValue = this.s.slice(this.pos + 1, end);
      if (rawValue.includes('<')) this.fail('"<" in an attribute value');
      if (rawAttrs.some(([n]) => n === an)) this.fail(`attribute ${an} repeated`);
      rawAttrs.push([an, this.decodeText(rawValue)]);
      this.pos = end + 1;
    }
    // Namespace declarations first: they apply to the element's own name and attributes.
    let ns = scope;
    for (const [n, v] of rawAttrs) {
      if (n === 'xmlns' || n.startsWith('xmlns:')) {
        if (ns === scope) ns = new Map(scope);
        ns.set(n === 'xmlns' ? '' : n.slice(6), v);
      }
    }
    const resolve = (q: string, isAttr: boolean): [string, string] => {
      const i = q.indexOf(':');
      if (i < 0) return [isAttr ? '' : (ns.get('') ?? ''), q];
      const prefix = q.slice(0, i);
      const uri = prefix === 'xml' ? XML_NS : ns.get(prefix);
      if (uri === undefined) this.fail(`undeclared namespace prefix "${prefix}"`);
      return [uri, q.slice(i + 1)];
    };
    const [eNs, local] = resolve(qname, false);
    const attrs = new Map<string, string>();
    for (const [n, v] of rawAttrs) {
      if (n === 'xmlns' || n.startsWith('xmlns:')) continue;
      const [aNs, aLocal] = resolve(n, true);
      const key = aNs === '' ? aLocal : `{${aNs}}${aLocal}`;
      if (attrs.has(key)) this.fail(`attribute ${n} repeated`);
      attrs.set(key, v);
    }
    const el: XmlElement = { ns: eNs, local, attrs, children: [], text: '' };
    if (this.startsWith('/>')) {
      this.pos += 2;
      return el;
    }
    this.expect('>');
    for (;;) {
      if (this.pos >= this.s.length) this.fail(`<${qname}> is not closed`);
      if (this.startsWith('</')) {
        this.pos += 2;
        if (this.name() !== qname) this.fail(`</...> does not close <${qname}>`);
        this.skipSpace();
        this.expect('>');
        return el;
      }
      if (this.startsWith('<!--')) {
        const end = this.s.indexOf('-->', this.pos + 4);
        if (end < 0) this.fail('unterminated comment');
        this.pos = end + 3;
      } else if (this.startsWith('<![CDATA[')) {
        const end = this.s.indexOf(']]>', this.pos + 9);
        if (end < 0) this.fail('unterminated CDATA section');
        el.text += this.s.slice(this.pos + 9, end);
        this.pos = end + 3;
      } else if (this.startsWith('<?')) {
        const end = this.s.indexOf('?>', this.pos + 2);
        if (end < 0) this.fail('unterminated processing instruction');
        this.pos = end + 2;
      } else if (this.startsWith('<!')) {
        this.fail('markup declarations are not allowed');
      } else if (this.startsWith('<')) {
        el.children.push(this.element(ns, depth + 1));
      } else {
        const end = this.s.indexOf('<', this.pos);
        const raw = this.s.slice(this.pos, end < 0 ? this.s.length : end);
        if (raw.includes(']]>')) this.fail('"]]>" in text');
        el.text += this.decodeText(raw);
        this.pos += raw.length;
      }
    }
  }
}

function parseXml(doc: string): XmlElement {
  const r = new Reader(doc.startsWith('\ufeff') ? doc.slice(1) : doc);
  r.skipMisc();
  if (r.startsWith('<!')) r.fail('a DOCTYPE is not allowed');
  if (!r.startsWith('<')) r.fail('expected the root element');
  const root = r.element(new Map(), 0);
  r.skipMisc();
  if (r.pos !== doc.length - (doc.startsWith('\ufeff') ? 1 : 0)) r.fail('content after the root element');
  return root;
}

function pidfChildren(el: XmlElement, local: string): XmlElement[] {
  return el.children.filter((c) => c.ns === PIDF_NS && c.local === local);
}

/** Parses a PIDF document (a PUBLISH body); anything malformed or not PIDF throws PidfError. */
export function parsePidf(body: string | Uint8Array): Presence {
  if (body.length > MAX_PIDF_BYTES) throw new PidfError(`PIDF document larger than ${MAX_PIDF_BYTES} bytes`);
  let doc: string;
  if (typeof body === 'string') doc = body;
  else {
    try {
      doc = new TextDecoder('utf-8', { fatal: true }).decode(body);
    } catch {
      throw new PidfError('PIDF document is not UTF-8');
    }
  }
  const root = parseXml(doc);
  if (root.ns !== PIDF_NS || root.local !== 'presence') throw new PidfError(`root element is not <presence> in ${PIDF_NS}`);
  const entity = root.attrs.get('entity');
  if (entity === undefined || entity.trim() === '') throw new PidfError('<presence> lacks its entity attribute');
  const tuples: PidfTuple[] = [];
  const ids = new Set<string>();
  for (const t of pidfChildren(root, 'tuple')) {
    if (tuples.length >= MAX_TUPLES) throw new PidfError(`more than ${MAX_TUPLES} tuples`);
    const id = t.attrs.get('id');
    if (id === undefined || !ID_RE.test(id)) throw new PidfError('<tuple> lacks a valid id');
    if (ids.has(id)) throw new PidfError(`tuple id ${id} repeated`);
    ids.add(id);
    const status = pidfChildren(t, 'status');
    if (status.length !== 1) throw new PidfError(`tuple ${id} needs exactly one <status>`);
    const basicEls = pidfChildren(status[0], 'basic');
    if (basicEls.length > 1) throw new PidfError(`tuple ${id} has more than one <basic>`);
    const tuple: PidfTuple = { id, notes: pidfChildren(t, 'note').map((n) => n.text.trim()) };
    if (basicEls.length === 1) {
      const b = basicEls[0].text.trim();
      if (b !== 'open' && b !== 'closed') throw new PidfError(`tuple ${id}: <basic> is "${b}", not open or closed`);
      tuple.basic = b;
    }
    const contact = pidfChildren(t, 'contact');
    if (contact.length > 1) throw new PidfError(`tuple ${id} has more than one <contact>`);
    if (contact.length === 1) tuple.contact = contact[0].text.trim();
    tuples.push(tuple);
  }
  return { entity, tuples, notes: pidfChildren(root, 'note').map((n) => n.text.trim()) };
}

/** The presentity's overall status: open if any tuple is open (RFC 3863 leaves composition to us). */
export function overallBasic(p: Presence): Basic {
  return p.tuples.some((t) => t.basic === 'open') ? 'open' : 'closed';
}
