// The explorer page in headless Chromium (Debian's /usr/bin/chromium through playwright-core)
// against a running regtest node: new blocks appear without a reload, search lands on a block, a
// name and a record, and the record page checks its inclusion proof itself (and catches a forged
// one). Chromium missing is a failure, not a skip: CI's .ci/run installs it.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import type { Page } from 'playwright-core';
import { chromiumMissing, launchChromium } from './util/chromium.ts';
import { DotsNode } from '../node/node.ts';
import { defaultConfig } from '../node/config.ts';
import { silentLogger } from '../core/log.ts';
import { newKey } from './helpers.ts';
import { getJson, postJson } from './util/proc.ts';
import { tmpDir } from './util/tmp.ts';
import { signRecord, Kind, commitmentOf, type NameCommit, type NameClaim, type NameDelegate, type NodeAnnounce, type Binding, type Presence, type Transfer } from '../core/records.ts';
import { toHex } from '../core/hash.ts';
import { addressOf, encodeAddress } from '../core/address.ts';
import { publicKeyOf } from '../core/sig.ts';


t.test('explorer in headless Chromium', async (t) => {
  if (chromiumMissing(t)) return;
  const node = await DotsNode.start({ ...defaultConfig('regtest'), datadir: tmpDir(t), apiPort: 0, p2pPort: 0 }, silentLogger);
  t.teardown(() => node.stop());
  const api = node.apiUrl;
  const mine = async (count = 1): Promise<void> => {
    t.equal((await postJson(`${api}/api/dev/mine`, { count })).status, 200);
  };
  const post = async (rec: { bytes: Uint8Array }): Promise<void> => {
    t.equal((await postJson(`${api}/api/records`, { record: toHex(rec.bytes) })).status, 202);
  };

  // A name served by an announced node, online.
  const owner = newKey();
  const nodeKey = newKey();
  const salt = randomBytes(32);
  const name = 'sip:alice@dots.test';
  for (const n of ['dots.test', name]) await post(signRecord<NameCommit>('regtest', owner.secret, { kind: Kind.NameCommit, pubkey: owner.pub, commitment: commitmentOf(n, salt, owner.pub) }));
  await mine(1);
  // the domain first: its owner hands out the addresses under it
  for (const n of ['dots.test', name]) await post(signRecord<NameClaim>('regtest', owner.secret, { kind: Kind.NameClaim, name: n, pubkey: owner.pub, salt }));
  await post(signRecord<NodeAnnounce>('regtest', nodeKey.secret, { kind: Kind.NodeAnnounce, pubkey: nodeKey.pub, sipUris: ['sip:dots.test'], p2pAddrs: [], rewardAddress: nodeKey.address, seq: 1 }));
  await mine(1);
  await post(signRecord<NameDelegate>('regtest', owner.secret, { kind: Kind.NameDelegate, name, pubkey: owner.pub, nodes: [nodeKey.address], nameSeq: 0 }));
  await mine(1);
  const bind = signRecord<Binding>('regtest', owner.secret, { kind: Kind.Binding, name, node: addressOf(nodeKey.pub), status: 1, expires: Math.floor(Date.now() / 1000) + 3600, seq: 1, pubkey: owner.pub });
  await post(bind);
  await mine(1);
  // then the node says it in its compact form: one presence record for its users' changes
  const ref = (await getJson<{ ref: number }>(`${api}/api/names/${encodeURIComponent(name)}`)).body.ref;
  const now = Math.floor(Date.now() / 1000);
  const pres = signRecord<Presence>('regtest', nodeKey.secret, { kind: Kind.Presence, pubkey: nodeKey.pub, seq: 2, base: now, entries: [{ ref, status: 1, expires: now + 1800 }] });
  await post(pres);
  await mine(1);
  const height = (await getJson<{ height: number }>(`${api}/api/status`)).body.height;
  const block2 = (await getJson<{ hash: string }>(`${api}/api/blocks/2`)).body.hash;

  const ctx = await launchChromium(t, { viewport: { width: 1280, height: 900 } });
  const page: Page = ctx.pages()[0] ?? (await ctx.newPage());
  // Generous bounds for a loaded 2-core CI machine; a passing run takes a few seconds.
  page.setDefaultTimeout(15_000);
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => {
    // A search for something unknown is a 404 by design; Chromium logs every failed fetch.
    if (m.type() === 'error' && !/status of 404/.test(m.text())) errors.push(m.text());
  });

  await t.test('the home page shows new blocks as they are mined', async (t) => {
    await page.goto(`${api}/`);
    await page.waitForSelector(`#latest-blocks tr[data-height="${height}"]`);
    await page.waitForSelector('#live[data-state="live"]');
    t.equal(await page.textContent('#stat-height'), String(height));
    t.equal(await page.locator('svg.chart').count(), 3, 'difficulty, hashrate and block-time charts');
    await page.evaluate(() => ((globalThis as unknown as { marker: number }).marker = 1));
    await mine(1);
    await page.waitForSelector(`#latest-blocks tr[data-height="${height + 1}"]`);
    t.equal(await page.textContent('#stat-height'), String(height + 1), 'the height card follows');
    await mine(2);
    await page.waitForSelector(`#latest-blocks tr[data-height="${height + 3}"]`);
    t.equal(await page.locator('#latest-blocks tbody tr').first().getAttribute('data-height'), String(height + 3), 'newest on top');
    // A record entering the pool shows up in "Pending records" live too.
    const tx = signRecord<Transfer>('regtest', node.secret, { kind: Kind.Transfer, pubkey: publicKeyOf(node.secret), to: owner.address, amount: 1000, fee: 1, nonce: 0 });
    await post(tx);
    await page.waitForSelector(`#pending tr[data-id="${toHex(tx.id)}"]`);
    t.equal(await page.evaluate(() => (globalThis as unknown as { marker?: number }).marker), 1, 'all without a reload');
  });

  const search = async (q: string, urlPattern: RegExp): Promise<void> => {
    await page.fill('#search input[name=q]', q);
    await page.press('#search input[name=q]', 'Enter');
    await page.waitForURL(urlPattern);
  };

  await t.test('search finds a block by hash and by height', async (t) => {
    await search(block2, /#\/block\/[0-9a-f]{64}$/);
    await page.waitForSelector('h1:text("Block 2")');
    await page.waitForSelector('#hash-check[data-state="verified"]');
    t.equal(await page.textContent('#block-hash'), block2);
    await search('1', /#\/block\//);
    await page.waitForSelector('h1:text("Block 1")');
    t.pass('height 1 found');
  });

  await t.test('search finds a name, with its owner, binding and history', async (t) => {
    await search('alice@dots.test', /#\/name\//);
    await page.waitForSelector(`h1.name:has-text("${name}")`);
    t.equal(await page.textContent('#name-status'), 'online');
    t.match(await page.textContent('main'), /served by node/);
    t.ok((await page.locator('main table tbody tr').count()) >= 2, 'claim and binding in the history');
  });

  await t.test('search finds a record, and the page verifies its inclusion proof', async (t) => {
    await search(toHex(bind.id), /#\/record\//);
    await page.waitForSelector('#proof-status[data-state="verified"]');
    t.match(await page.textContent('#proof-status'), /Verified in this browser/);
    t.equal(await page.locator('ol.steps li.ok').count(), 5, 'id, path, header root, block hash, proof of work');
  });

  await t.test('a presence record shows each change with its name', async (t) => {
    await search(toHex(pres.id), /#\/record\//);
    await page.waitForSelector('table.entries');
    t.equal(await page.textContent('table.entries tbody tr td a'), name, 'the entry names alice, by her number on the chain');
    t.equal(await page.textContent('table.entries tbody tr .status'), 'online');
    await page.waitForSelector('#proof-status[data-state="verified"]');
    t.pass('its inclusion proof verifies in the page');
    const hist = (await getJson<{ items: Array<{ kind: string }> }>(`${api}/api/names/${encodeURIComponent(name)}/history`)).body.items.map((x) => x.kind);
    t.equal(hist[0], 'presence', "the presence record heads alice's history");
    const nodeHist = (await getJson<{ items: Array<{ kind: string }> }>(`${api}/api/nodes/${toHex(nodeKey.address)}/history`)).body.items.map((x) => x.kind);
    t.equal(nodeHist[0], 'presence', "and the node's");
  });

  await t.test('a forged proof fails in the page', async (t) => {
    await page.route('**/api/records/*', async (route) => {
      const res = await route.fetch();
      const body = (await res.json()) as { proof: { path: string[] } };
      body.proof.path[0] = body.proof.path[0].replace(/^./, (c) => (c === '0' ? '1' : '0'));
      await route.fulfill({ response: res, json: body });
    });
    // Another document (a query string), so the page loads afresh through the forging route.
    await page.goto(`${api}/?forged#/record/${toHex(bind.id)}`);
    await page.waitForSelector('#proof-status[data-state="failed"]');
    t.match(await page.textContent('ol.steps li.bad'), /inclusion proof/);
    await page.unroute('**/api/records/*');
  });

  await t.test('address and node pages, unknown search, phone width', async (t) => {
    await search(encodeAddress('rdots', node.rewardAddress), /#\/address\//);
    await page.waitForSelector('#balance');
    t.match(await page.textContent('#balance'), /DOTS$/);
    await search(toHex(addressOf(nodeKey.pub)), /#\/node\//);
    await page.waitForSelector(`main a.name:text("${name}")`);
    t.pass('the node page lists the name it serves');
    await search('sip:nobody@dots.test', /#\/search\//);
    await page.waitForSelector('h2:has-text("Nothing found")');
    t.pass('an unknown name says so');
    await page.setViewportSize({ width: 390, height: 844 });
    await page.goto(`${api}/`);
    await page.waitForSelector('#latest-blocks tr');
    const overflow = Number(await page.evaluate('document.documentElement.scrollWidth - window.innerWidth'));
    t.ok(overflow <= 0, `nothing wider than a phone screen (overflow ${overflow}px)`);
  });

  t.same(errors, [], 'no script errors in the page');
});
