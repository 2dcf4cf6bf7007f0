// PIDF documents (RFC 3863): built for NOTIFY, parsed from PUBLISH, strict about malformed input.
import t from 'tap';
import { buildPidf, parsePidf, overallBasic, xmlEscape, PidfError, MAX_PIDF_BYTES } from '../sip/pidf.ts';

t.test('build and parse round trip, with escaping', async (t) => {
  const doc = buildPidf({ entity: 'sip:alice@a.test', basic: 'open', note: 'in a meeting <until 3> & "busy" \'ish\'', contact: 'sip:alice@a.test;x=<1>' });
  t.match(doc, /^<\?xml version="1\.0" encoding="UTF-8"\?>\r\n<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:alice@a\.test">/);
  t.match(doc, /<basic>open<\/basic>/);
  t.match(doc, /<note>in a meeting &lt;until 3&gt; &amp; &quot;busy&quot; &apos;ish&apos;<\/note>/);
  t.same(parsePidf(doc), {
    entity: 'sip:alice@a.test',
    tuples: [{ id: 't0', basic: 'open', contact: 'sip:alice@a.test;x=<1>', notes: [] }],
    notes: ['in a meeting <until 3> & "busy" \'ish\''],
  });
  const closed = parsePidf(buildPidf({ entity: 'pres:bob@b.test?x="1"&y=2', basic: 'closed', tupleId: 'bob-1' }));
  t.equal(closed.entity, 'pres:bob@b.test?x="1"&y=2', 'entity escaped in the attribute');
  t.equal(overallBasic(closed), 'closed');
  t.same(closed.tuples, [{ id: 'bob-1', basic: 'closed', notes: [] }]);
  t.equal(parsePidf(new TextEncoder().encode(buildPidf({ entity: 'sip:ü@a.test', basic: 'open', note: 'Grüße ☎' }))).notes[0], 'Grüße ☎', 'UTF-8 bytes');
  t.throws(() => buildPidf({ entity: 'sip:a@b', basic: 'open', tupleId: '1bad' }), PidfError);
  t.throws(() => buildPidf({ entity: '', basic: 'open' }), PidfError);
  t.throws(() => xmlEscape('bell\u0007'), PidfError, 'control characters cannot be carried');
});

t.test('parses what phones publish: prefixes, extensions, comments, CDATA, references', async (t) => {
  // Shaped like a Linphone / RFC 4479 document: prefixed PIDF, data-model and RPID extensions.
  const doc = `<?xml version="1.0" encoding="UTF-8"?>
<!-- published by a phone -->
<p:presence xmlns:p="urn:ietf:params:xml:ns:pidf" xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model"
    xmlns:rpid='urn:ietf:params:xml:ns:pidf:rpid' entity="sip:carol@c.test">
  <p:tuple id="phone">
    <p:status><p:basic> open </p:basic></p:status>
    <p:contact priority="0.8">sip:carol@10.0.0.5</p:contact>
    <p:note xml:lang="en">on the &#x260E; &#9742; <![CDATA[<raw & text>]]></p:note>
    <p:timestamp>2026-01-01T00:00:00Z</p:timestamp>
  </p:tuple>
  <p:tuple id="desk"><p:status/></p:tuple>
  <dm:person id="p1"><rpid:activities><rpid:on-the-phone/></rpid:activities></dm:person>
  <p:note>away</p:note>
</p:presence>
`;
  const p = parsePidf(doc);
  t.equal(p.entity, 'sip:carol@c.test');
  t.same(p.tuples, [
    { id: 'phone', basic: 'open', contact: 'sip:carol@10.0.0.5', notes: ['on the ☎ ☎ <raw & text>'] },
    { id: 'desk', notes: [] },
  ]);
  t.same(p.notes, ['away']);
  t.equal(overallBasic(p), 'open');
  // Default namespace redeclared on a child: only PIDF-namespace elements count.
  const foreign = parsePidf(`<presence xmlns="${'urn:ietf:params:xml:ns:pidf'}" entity="sip:d@d.test"><tuple id="x" xmlns="urn:other"><status><basic>open</basic></status></tuple></presence>`);
  t.same(foreign.tuples, [], 'a tuple in another namespace is an extension, not a tuple');
  t.equal(overallBasic(foreign), 'closed');
});

t.test('malformed or non-PIDF input is refused with a PidfError', async (t) => {
  const ok = (inner: string, attrs = ''): string => `<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:a@a.test"${attrs}>${inner}</presence>`;
  const cases: Array<[string, string]> = [
    ['', 'empty'],
    ['not xml', 'text'],
    ['<presence entity="sip:a@a.test"></presence>', 'no PIDF namespace'],
    ['<presence xmlns="urn:ietf:params:xml:ns:pidf"></presence>', 'no entity'],
    [ok('<tuple id="a"><status><basic>open</basic></status>'), 'unclosed element'],
    [ok('<tuple id="a"><status><basic>open</basic></tuple></status>'), 'crossed tags'],
    [ok('<tuple id="a"><status><basic>maybe</basic></status></tuple>'), 'basic neither open nor closed'],
    [ok('<tuple id="a"></tuple>'), 'tuple without status'],
    [ok('<tuple><status/></tuple>'), 'tuple without id'],
    [ok('<tuple id="a"><status/></tuple><tuple id="a"><status/></tuple>'), 'repeated tuple id'],
    [ok('<tuple id="a"><status><basic>open</basic><basic>closed</basic></status></tuple>'), 'two basics'],
    [ok('<tuple id="a"><status/><contact>x</contact><contact>y</contact></tuple>'), 'two contacts'],
    [ok('<note>a & b</note>'), 'bare ampersand'],
    [ok('<note>&nbsp;</note>'), 'unknown entity'],
    [ok('<note>&#0;</note>'), 'NUL character reference'],
    [ok('<note>]]></note>'), ']]> in text'],
    [ok('<x:note/>'), 'undeclared prefix'],
    [ok('', ' entity="twice"'), 'repeated attribute'],
    [ok('', ' a=unquoted'), 'unquoted attribute'],
    [ok('', ' a="<"'), '< in an attribute'],
    [ok('<note>x</note>') + '<more/>', 'content after the root'],
    ['<!DOCTYPE presence [<!ENTITY a "aaaa">]>' + ok('<note>&a;</note>'), 'DOCTYPE'],
    [ok('<!ENTITY a "x">'), 'markup declaration inside'],
    [ok('<!-- unterminated'), 'unterminated comment'],
    [ok('<![CDATA[ unterminated'), 'unterminated CDATA'],
    ['<?xml version="1.0"', 'unterminated declaration'],
    [ok('<note a="1"b="2"/>'), 'no space between attributes'],
    [ok('<tuple id="a">'.repeat(20)), 'too deep'],
    ['<other xmlns="urn:ietf:params:xml:ns:pidf" entity="x"/>', 'wrong root element'],
  ];
  for (const [doc, why] of cases) t.throws(() => parsePidf(doc), PidfError, why);
  t.throws(() => parsePidf('x'.repeat(MAX_PIDF_BYTES + 1)), PidfError, 'too large');
  t.throws(() => parsePidf(new Uint8Array([0x3c, 0xff, 0xfe])), PidfError, 'not UTF-8');
  t.throws(() => parsePidf(ok(Array.from({ length: 33 }, (_, i) => `<tuple id="t${i}"><status/></tuple>`).join(''))), PidfError, 'too many tuples');
  t.same(parsePidf(ok('<!-- c --><?pi x?>')).tuples, [], 'comments and processing instructions inside are skipped');
  t.same(parsePidf('\ufeff' + ok('')).entity, 'sip:a@a.test', 'a byte order mark is allowed');
});
