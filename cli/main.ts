// The `dots` command line: one command per file in this folder, dispatched here. Every user
// mistake (bad flag, bad value, locked data directory) ends in one line on stderr saying what to
// fix and exit code 2; nothing prints a stack trace unless DOTS_DEBUG is set.
import { UserError, ValidationError } from '../core/errors.ts';
import { runNode } from './node.ts';
import { runWallet } from './wallet.ts';
import { runName } from './name.ts';
import { runUser, USER_USAGE } from './user.ts';
import { runBench } from './bench.ts';

const INTRO = `dots: a DOTS node (SIP registrar, presence agent and proxy on a proof-of-work chain)

Usage:
  dots node [options]              run a node
  dots wallet new|address|balance|send|history ...
  dots name claim|renew|transfer|delegate|show ...
  dots user add NAME --password PW ...   a SIP account for a phone at this node
  dots bench hash|chain|presence|pool|sync|sip|calls|receipts|abuse|roam|tls|trunk|registrations|all [--json] [--seconds N]
  dots help | dots COMMAND --help  this text, or one command's part of it
`;

/** Each command's part of the help, shown by `dots COMMAND --help` and all together by `dots --help`. */
const SECTIONS: Record<string, string> = {
  node: `Node options (dots node):
  --network devnet|testnet|mainnet|regtest   network (default devnet)
  --datadir DIR          data directory (default ./data/NETWORK)
  --mine                 mine blocks
  --miner-threads N      mining threads (default 1)
  --p2p-port N           peer-to-peer TCP port (0 picks a free one)
  --p2p-host H           peer-to-peer listen address (default 127.0.0.1)
  --p2p-announce MADDR   where other nodes dial this one, e.g. /dns4/node.example.org/tcp/27070
                         (repeatable; default: the listening address)
  --bootstrap MULTIADDR  peer to join (repeatable)
  --mdns                 find peers on the local network (mDNS)
  --sip-host H           SIP listen address (default 127.0.0.1)
  --sip-port N           SIP UDP/TCP port (default 5060)
  --sip-announce H[:P]   the public address or DNS name phones and nodes reach this node at
                         (on the chain, in Via and Record-Route); mainnet and testnet refuse
                         to announce 0.0.0.0 or a loopback address
  --tls-port N           SIP over TLS port (default 5061; node-to-node calls go over TLS)
  --tls-cert FILE        a PEM certificate (chain) to use, e.g. Let's Encrypt's fullchain.pem
  --tls-key FILE         its PEM private key (default: the node's own, made at first start
                         in DATADIR/tls.crt and tls.key)
  --no-tls               no SIP over TLS
  --ws-port N            SIP over WebSocket (RFC 7118) on this port, for browser phones, and
                         the phone page at its root (also at the API's /phone/)
  --ws-tls               wss on that port (with the TLS certificate) instead of ws
  --ice-server URL       a STUN server the phone page gives browsers, stun:HOST[:PORT]
                         (repeatable; default none: host candidates only)
  --require-tls          phones must register over TLS; SDP with SRTP keys (a=crypto) is
                         refused on plain transports (488) instead of relayed
  --domain D             SIP domain this node serves (default: the data directory's, else
                         its own, n + 16 hex digits of its node id + .dots)
  --api-host H           API and explorer address (default 127.0.0.1)
  --api-port N           API and explorer port (default 8080)
  --open-registration    let any user register without a password (devnet)
  --sip-keepalive N      seconds between OPTIONS pings to each phone (default 30)
  --sip-digest LIST      digest algorithms offered, preferred first: md5, sha-256 or both
                         (default: sha-256 first, md5 alone to phones known to need it)
  --sip-ban CIDR         drop SIP from these addresses and refuse their connections
                         (an IP or CIDR block; repeatable or comma-separated)
  --trunk sip:IP[:PORT]  your own SIP server (Kamailio, a PBX) for the domain's users that
                         register there (dots user add NAME --trunk): calls for them go to it,
                         its requests are theirs, and their presence is checked through it
                         (repeatable: instances of one network, tried in order)
  --trunk-allow SRC      the addresses (IP or IP:PORT) whose requests are that server's
                         (repeatable; default the --trunk address itself)
  --max-pending N        records the pending pool holds (default 50000); when full, a record
                         replaces one paying less per byte, a signer past its share first
  --fee-rate N           units per byte the node's own records pay their miners (bindings,
                         names, its announcement, call receipts; default: the network's least)
`,
  wallet: `Wallet (dots wallet):
  dots wallet new [--wallet FILE] [--passphrase P]   create an encrypted key file
  dots wallet address [--wallet FILE]                show its address
  dots wallet balance [--wallet FILE] [--api URL] [--units]   balance from a running node
  dots wallet history [--wallet FILE] [--api URL] [--units]   what came and went
  dots wallet send ADDRESS AMOUNT [--fee N | --fee-rate N] [--wallet FILE] [--api URL]
                                   AMOUNT and N in units (100000000 units = 1 DOTS); the fee
                                   defaults to the network's least rate per byte
  (the passphrase may also come from DOTS_PASSPHRASE; amounts print in DOTS unless --units;
  commands that ask a node use its network, --network picks the prefix for new and address)
`,
  name: `Names (dots name; sip:user@domain, +E164 or a domain; signed with the wallet key):
  dots name claim NAME [--no-wait]     commit, wait for the commitment to mature, reveal
  dots name renew NAME
  dots name transfer NAME PUBKEY [--delegates NODE-ID,...]
                                       to the owner of another key (66 hex digits), served by
                                       the listed nodes until the new owner delegates anew
  dots name delegate NAME NODE-ID[,NODE-ID...]|none
                                       the nodes (at most 8, in order of preference) that may
                                       sign presence bindings for the name, each naming itself
  dots name show NAME
  (each takes --wallet FILE, --api URL, --network N, --fee-rate N like the wallet commands)
`,
  user: `Accounts (dots user):
  ${USER_USAGE}
                         a SIP account for a phone at this node (a running node picks it up);
                         --alias adds a number or name the user's wallet claimed and delegated
`,
  bench: `Benchmarks (dots bench NAME [--json] [--seconds N]):
  hash     double-SHA-256 header hashes per second for each hasher
  chain    validate and connect 10,000 records: blocks/s, records/s, bytes on disk per record
  presence what presence changes cost the chain: bytes per change, per user per day, at 10^9 users
  sync     initial sync of 5,000 blocks from a peer; record propagation along 3 nodes
  pool     records/s the pending pool takes filling to 50,000 and full, each newcomer evicting one
  sip      REGISTER transactions per second, the node against Kamailio (needs sipp, kamailio)
  calls    calls/s two nodes route, latency a node adds to an INVITE, registration to reachable
  receipts two nodes receipting 1,000 calls: receipts/s, CPU per receipt, receipts per request
  abuse    a phone registering and calling every second while one address floods the node
  roam     a phone at two serving nodes: one dies, time until a call reaches the phone
  tls      REGISTER/s over UDP, TCP and TLS (one run, one generator); TLS handshakes/s
  trunk    Kamailio trunked to a node: REGISTER/s with the node's checks and chain work, calls/s into its phones
  registrations  saving the registrar's contacts: the longest event-loop turn a save takes
  all      every one of them (the default)
`,
};

const COMMANDS: Record<string, (args: string[]) => Promise<number>> = {
  node: runNode,
  wallet: runWallet,
  name: runName,
  user: runUser,
  bench: runBench,
};

function wantsHelp(args: string[]): boolean {
  return args.includes('--help') || args.includes('-h');
}

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  try {
    if (cmd === undefined || cmd === 'help' || cmd === '--help' || cmd === '-h') {
      process.stdout.write([INTRO, ...Object.values(SECTIONS)].join('\n'));
      return cmd === undefined ? 2 : 0;
    }
    const run = COMMANDS[cmd];
    if (run === undefined) throw new UserError(`unknown command "${cmd}" (see dots --help)`);
    if (wantsHelp(rest)) {
      process.stdout.write(SECTIONS[cmd]);
      return 0;
    }
    return await run(rest);
  } catch (e) {
    if (e instanceof UserError || e instanceof ValidationError) {
      process.stderr.write(`dots: ${e.message}\n`);
      return 2;
    }
    if (process.env.DOTS_DEBUG !== undefined) throw e;
    process.stderr.write(`dots: unexpected error: ${(e as Error).message} (set DOTS_DEBUG=1 for details)\n`);
    return 1;
  }
}
