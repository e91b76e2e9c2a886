// Drives Baileys (an independent WhatsApp Web client) against wa-sim for tests/sim/baileys.rs.
//
// The Rust test owns the flow: it writes one JSON command per line on stdin and reads one
// JSON event per line on stdout. Baileys' own log (pino) goes to stderr, which the test
// keeps and prints the tail of when a step fails.
//
// Environment: WA_SIM_WS (websocket URL), WA_SIM_CONTROL (control API base URL),
// AUTH_DIR (folder for Baileys' saved auth state), BAILEYS_LOG_LEVEL (default "debug").
//
// Commands:  {"cmd":"connect"}                   open a socket with the auth state saved in AUTH_DIR
//            {"cmd":"send","to":"155…","text":…}  send a text to a phone number
//            {"cmd":"end"}                       close the current socket (auth state is kept)
//            {"cmd":"exit"}
// Events:    ready, qr, open, close, sent, receipt, message, error (see emit() calls).
// libsignal also prints session dumps ("Closing session: …") on stdout; the test keeps any
// line that is not JSON with the log.
import { createInterface } from 'node:readline';

import makeWASocket, {
  Curve,
  DisconnectReason,
  WA_CERT_DETAILS,
  generateSignalPubKey,
  useMultiFileAuthState
} from 'baileys';
import * as curve from 'libsignal/src/curve.js';
import pino from 'pino';

const env = name => {
  const value = process.env[name];
  if (!value) {
    throw new Error(`${name} is not set`);
  }
  return value;
};
const wsUrl = env('WA_SIM_WS');
const controlUrl = env('WA_SIM_CONTROL');
const authDir = env('AUTH_DIR');
const logger = pino(
  { level: process.env.BAILEYS_LOG_LEVEL || 'debug' },
  pino.destination({ dest: 2, sync: true })
);

const emit = event => process.stdout.write(JSON.stringify(event) + '\n');

process.on('unhandledRejection', error => {
  logger.error({ err: error }, 'unhandled rejection');
  emit({ event: 'error', where: 'unhandledRejection', message: String(error?.stack || error) });
});

await trustSimulatorRootKey();
const signatureChecks = watchSignatureChecks();

/**
 * Baileys checks the server's Noise certificate chain (Utils/noise-handler.js,
 * processHandshake): the intermediate must be signed by WA_CERT_DETAILS.PUBLIC_KEY (WhatsApp's
 * root key) and carry issuerSerial === WA_CERT_DETAILS.SERIAL (0), and the leaf must be signed
 * by the intermediate's key. It does not compare the leaf key with the server's static key.
 * Only WhatsApp can sign with WhatsApp's root key, so this test replaces the exported constant
 * with the root key the simulator publishes (its root also has serial 0). Baileys' code is not
 * changed and verifies the simulator's chain for real.
 */
async function trustSimulatorRootKey() {
  const response = await fetch(`${controlUrl}/root-key`);
  if (!response.ok) {
    throw new Error(`GET /control/root-key answered ${response.status}`);
  }
  // {"hex": "<32-byte Curve25519 key>", "base64": "<the same>"}
  const { hex } = await response.json();
  const key = Buffer.from(hex ?? '', 'hex');
  if (key.length !== 32) {
    throw new Error(`the published root key is not 32 bytes: ${hex}`);
  }
  WA_CERT_DETAILS.PUBLIC_KEY = key;
}

/**
 * Baileys 7.0.0-rc14's Curve.verify (Utils/crypto.js) returns true unless libsignal throws, but
 * libsignal's verifySignature throws only for malformed sizes and *returns* false for a wrong
 * signature: Baileys accepts any 64-byte signature, so on its own it checks neither the Noise
 * chain nor the pair-success account signature. This watches every check without changing its
 * result and reports a signature Baileys accepted that does not verify, so the test still fails
 * where WhatsApp Web, which does verify, would refuse the simulator.
 */
function watchSignatureChecks() {
  const counts = { checked: 0 };
  const baileysVerify = Curve.verify;
  Curve.verify = (pubKey, message, signature) => {
    const accepted = baileysVerify(pubKey, message, signature);
    counts.checked++;
    if (accepted && !verifiesForReal(pubKey, message, signature)) {
      emit({
        event: 'error',
        where: 'signature check',
        message: `Baileys accepted a signature that does not verify with key ${Buffer.from(pubKey).toString('hex')}`
      });
    }
    return accepted;
  };
  return counts;
}

function verifiesForReal(pubKey, message, signature) {
  try {
    return curve.verifySignature(generateSignalPubKey(pubKey), message, signature) === true;
  } catch {
    return false;
  }
}

let sock = null;

async function connect() {
  const { state, saveCreds } = await useMultiFileAuthState(authDir);
  const socket = makeWASocket({
    waWebSocketUrl: wsUrl,
    auth: state,
    logger,
    // The simulator has no history to sync and no media hosts.
    syncFullHistory: false,
    markOnlineOnConnect: false,
    connectTimeoutMs: 15000,
    defaultQueryTimeoutMs: 15000
  });
  sock = socket;
  socket.ev.on('creds.update', saveCreds);
  socket.ev.on('connection.update', update => {
    if (socket !== sock) {
      return;
    }
    if (update.qr) {
      emit({ event: 'qr', qr: update.qr });
    }
    if (update.connection === 'open') {
      emit({
        event: 'open',
        me: socket.user?.id ?? null,
        lid: socket.user?.lid ?? null,
        signatures_checked: signatureChecks.checked
      });
    }
    if (update.connection === 'close') {
      const error = update.lastDisconnect?.error;
      const status = error?.output?.statusCode ?? null;
      emit({ event: 'close', status, reason: error?.message ?? null });
      sock = null;
      // After pairing the server asks for a restart (515): Baileys' documented usage is to
      // open a new socket on the saved state, which then logs in.
      if (status === DisconnectReason.restartRequired) {
        connect().catch(reportError('reconnect after restart'));
      }
    }
  });
  socket.ev.on('messages.update', updates => {
    for (const { key, update } of updates) {
      if (update.status !== undefined && update.status !== null) {
        emit({ event: 'receipt', id: key.id, remote: key.remoteJid, status: update.status });
      }
    }
  });
  socket.ev.on('messages.upsert', ({ messages, type }) => {
    for (const message of messages) {
      if (message.key.fromMe) {
        continue;
      }
      const content = message.message;
      const text = content?.conversation ?? content?.extendedTextMessage?.text ?? null;
      emit({
        event: 'message',
        id: message.key.id,
        from: message.key.remoteJid,
        from_pn: message.key.remoteJidAlt ?? message.key.senderPn ?? null,
        type,
        text,
        stub: message.messageStubType ?? null
      });
    }
  });
}

function reportError(where) {
  return error => {
    logger.error({ err: error }, where);
    emit({ event: 'error', where, message: String(error?.stack || error) });
  };
}

async function run(command) {
  switch (command.cmd) {
    case 'connect':
      await connect();
      break;
    case 'send': {
      if (!sock) {
        throw new Error('no open socket');
      }
      const sent = await sock.sendMessage(`${command.to}@s.whatsapp.net`, { text: command.text });
      emit({ event: 'sent', id: sent?.key?.id ?? null, to: sent?.key?.remoteJid ?? null });
      break;
    }
    case 'end':
      sock?.end(undefined);
      break;
    case 'exit':
      sock?.end(undefined);
      process.exit(0);
      break;
    default:
      throw new Error(`unknown command ${JSON.stringify(command)}`);
  }
}

emit({ event: 'ready', root_key: WA_CERT_DETAILS.PUBLIC_KEY.toString('hex'), node: process.version });
const lines = createInterface({ input: process.stdin });
lines.on('line', line => {
  let command;
  try {
    command = JSON.parse(line);
  } catch (error) {
    reportError('parse command')(error);
    return;
  }
  run(command).catch(reportError(`command ${command.cmd}`));
});
// The test closing stdin (or dying) ends the run.
lines.on('close', () => process.exit(0));
