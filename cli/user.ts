// `dots user add`: a SIP account for a phone at this node (telecom/users.ts keeps the accounts).
import { join, resolve } from 'node:path';
import { UserError } from '../core/errors.ts';
import { NODE_DEFAULTS } from '../consensus/params.ts';
import { addUser, USERS_FILE } from '../telecom/users.ts';
import { domain, makeDatadir, networkOf, parse, publicKeyArg } from './args.ts';
import { NODE_KEY_FILE, datadirDomain, ownDomain, recordDomain } from '../node/config.ts';
import { loadOrCreateKey } from '../wallet/keys.ts';
import { toHex } from '../core/hash.ts';

export const USER_USAGE = 'dots user add NAME --password PW | --trunk [--owner PUBKEY] [--alias NAME]... [--datadir DIR] [--network N] [--domain D]';

export async function runUser(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  const { values: v, positionals } = parse(rest, { password: { type: 'string' }, datadir: { type: 'string' }, network: { type: 'string' }, domain: { type: 'string' }, alias: { type: 'string', multiple: true }, owner: { type: 'string' }, trunk: { type: 'boolean' } }, 1);
  if (sub !== 'add') throw new UserError(`unknown user command "${sub ?? ''}" (add)`);
  const name = positionals[0];
  if (name === undefined) throw new UserError(`usage: ${USER_USAGE}`);
  const trunk = v.trunk === true;
  if (trunk && v.password !== undefined) throw new UserError('--trunk and --password do not go together: a trunk user\'s phone registers at your own SIP server, not at this node');
  const password = trunk ? null : ((v.password as string | undefined) ?? process.env.DOTS_USER_PASSWORD);
  if (password === undefined) throw new UserError('give the password with --password PW (or DOTS_USER_PASSWORD), or --trunk for a user of your own SIP server behind dots node --trunk');
  const network = networkOf(v.network);
  const defaults = NODE_DEFAULTS[network];
  const datadir = resolve(String(v.datadir ?? defaults.datadir));
  // the data directory's domain unless told otherwise; told another, the account could not log in
  const recorded = datadirDomain(datadir);
  const given = v.domain === undefined ? undefined : domain(v.domain, '--domain');
  if (recorded !== undefined && given !== undefined && given !== recorded) {
    throw new UserError(`the node of ${datadir} serves the domain ${recorded}, so sip:${name}@${given} could not log in there: leave out --domain (or start the node with --domain ${given} first)`);
  }
  makeDatadir(datadir);
  // none given or recorded: the node's own domain, from its key (made now if the node never ran)
  const realm = given ?? recorded ?? ownDomain(loadOrCreateKey(join(datadir, NODE_KEY_FILE)).secret);
  if (recorded === undefined) recordDomain(datadir, realm);
  const aliases = ((v.alias as string[] | undefined) ?? []).map((a) => a.toLowerCase());
  const owner = v.owner === undefined ? undefined : toHex(publicKeyArg(v.owner, "--owner (the user's wallet key)"));
  const existed = addUser(datadir, name, password, realm, aliases, owner);
  process.stdout.write(`${existed ? 'updated' : 'added'} sip:${name}@${realm}${aliases.length > 0 ? ` (also ${aliases.join(', ')})` : ''}${trunk ? ', a user of the SIP server behind the trunk,' : ''} in ${join(datadir, USERS_FILE)} (a running node picks it up)\n`);
  if (owner !== undefined) process.stdout.write(`the node claims sip:${name}@${realm} and hands it to the key ${owner}, served by this node until that key delegates it elsewhere (dots name delegate); the key renews it\n`);
  return 0;
}
