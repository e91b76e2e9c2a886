// Baileys' half of the side-by-side benchmark (scripts/bench-vs-baileys): N Baileys sockets in
// this one Node process, paired by QR with the simulator, then the same send load the gateway
// bench puts through botwave. Prints progress, then one `BENCH_JSON {…}` line.
//
//   node --expose-gc bench.mjs --sim-url http://127.0.0.1:PORT --sessions N --messages M
//        --senders K --one-sender-messages M1
//
// Baileys checks the Noise certificate chain against WhatsApp's root key, which only WhatsApp
// can sign with; the benchmark points the exported WA_CERT_DETAILS at the simulator's published
// root key instead (GET /control/root-key). Nothing else in Baileys is changed.

import makeWASocket, { DisconnectReason, WA_CERT_DETAILS, initAuthCreds } from 'baileys'
import P from 'pino'

// libsignal (inside Baileys) dumps whole sessions with console.log; the figures use `say`.
const say = console.log.bind(console)
console.log = () => {}
console.info = () => {}

const RECIPIENT = '15559990001'
const ONE_SENDER_RECIPIENT = '15559990002'
const IN_FLIGHT = 64
/** A round that takes longer is reported as not finished (sockets can collapse under load). */
const ROUND_LIMIT_MS = 600_000

function parseArgs() {
	const args = { sessions: 100, messages: 2000, senders: 20, oneSenderMessages: 0, simUrl: null }
	const raw = process.argv.slice(2)
	for (let i = 0; i + 1 < raw.length; i++) {
		const value = raw[i + 1]
		switch (raw[i]) {
			case '--sim-url': args.simUrl = value.replace(/\/$/, ''); break
			case '--sessions': args.sessions = Number(value); break
			case '--messages': args.messages = Number(value); break
			case '--senders': args.senders = Number(value); break
			case '--one-sender-messages': args.oneSenderMessages = Number(value); break
		}
	}
	if (!args.simUrl) throw new Error('--sim-url is required')
	return args
}

const args = parseArgs()
const control = `${args.simUrl}/control`
const wsUrl = `${args.simUrl.replace(/^http/, 'ws')}/ws/chat`
const logger = P({ level: 'silent' })

async function controlCall(method, path, body) {
	const response = await fetch(`${control}${path}`, {
		method,
		headers: body ? { 'content-type': 'application/json' } : {},
		body: body ? JSON.stringify(body) : undefined
	})
	const text = await response.text()
	if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${text}`)
	return text ? JSON.parse(text) : null
}

/** Auth state in memory: what useMultiFileAuthState keeps in files, without the disk. */
function memoryAuthState() {
	const creds = initAuthCreds()
	const data = new Map()
	const keys = {
		get: async (type, ids) => {
			const found = {}
			for (const id of ids) {
				const value = data.get(`${type}-${id}`)
				if (value !== undefined) found[id] = value
			}
			return found
		},
		set: async (changes) => {
			for (const type of Object.keys(changes)) {
				for (const [id, value] of Object.entries(changes[type])) {
					if (value) data.set(`${type}-${id}`, value)
					else data.delete(`${type}-${id}`)
				}
			}
		}
	}
	return { creds, keys }
}

/** Reconnects after a dropped socket (counted: a benchmark figure of its own). */
let reconnects = 0

/**
 * One paired, connected Baileys socket for `phone`, as `{ sock }`: a socket that drops is
 * replaced by a new one on the same credentials, as Baileys' own examples do, and `ready`
 * is the promise of the current one being open. Pairing itself ends with the server's
 * "restart required" stream error, after which the client reconnects the same way.
 */
function pairedSocket(phone) {
	const auth = memoryAuthState()
	const holder = { sock: null, ready: null, paired: false }
	const connect = () => {
		holder.ready = new Promise((resolve, reject) => {
			const sock = makeWASocket({
				auth,
				logger,
				waWebSocketUrl: wsUrl,
				markOnlineOnConnect: false,
				shouldSyncHistoryMessage: () => false
			})
			holder.sock = sock
			sock.ev.on('creds.update', (update) => Object.assign(auth.creds, update))
			sock.ev.on('connection.update', ({ qr, connection, lastDisconnect }) => {
				if (qr) {
					controlCall('POST', '/scan', { phone, qr }).catch((error) =>
						reject(new Error(`scan for ${phone}: ${error.message}`))
					)
				}
				if (connection === 'open') {
					holder.paired = true
					resolve(holder)
				}
				if (connection === 'close') {
					const code = lastDisconnect?.error?.output?.statusCode
					if (code === DisconnectReason.loggedOut) {
						reject(new Error(`${phone} logged out`))
						return
					}
					if (holder.paired && code !== DisconnectReason.restartRequired) reconnects++
					connect().then(resolve, reject)
				}
			})
		})
		return holder.ready
	}
	return connect()
}

function rssKiB() {
	globalThis.gc?.()
	return process.memoryUsage().rss / 1024
}

function percentile(sorted, p) {
	if (sorted.length === 0) return NaN
	return sorted[Math.round((sorted.length - 1) * p)]
}

/** `messages` texts to `recipient` spread over `senders`, IN_FLIGHT at a time in all. */
async function sendRound(senders, recipient, messages) {
	const jid = `${recipient}@s.whatsapp.net`
	const sentAt = new Map()
	const started = Date.now()
	let next = 0
	const worker = async () => {
		while (next < messages) {
			const n = next++
			const text = `bench message ${n}`
			sentAt.set(text, Date.now())
			const sender = senders[n % senders.length]
			for (let attempt = 0; ; attempt++) {
				try {
					await sender.sock.sendMessage(jid, { text })
					break
				} catch (error) {
					// A socket that dropped mid-send: send again once its replacement is open.
					if (attempt >= 3) throw error
					await sender.ready
				}
			}
		}
	}
	const deadline = new Promise((_, reject) =>
		setTimeout(() => reject(new Error(`sending ${messages} did not finish in ${ROUND_LIMIT_MS} ms`)), ROUND_LIMIT_MS).unref()
	)
	await Promise.race([Promise.all(Array.from({ length: Math.min(IN_FLIGHT, messages) }, worker)), deadline])
	const acceptedMs = Date.now() - started
	let received
	for (;;) {
		received = await controlCall('GET', `/phones/${recipient}/messages`)
		if (received.length >= messages) break
		if (Date.now() - started > ROUND_LIMIT_MS) throw new Error(`messages lost: ${received.length} of ${messages}`)
		await new Promise((r) => setTimeout(r, 50))
	}
	const last = Math.max(...received.map((m) => m.received_at))
	const firstSent = Math.min(...sentAt.values())
	const latencies = received
		.filter((m) => sentAt.has(m.text))
		.map((m) => m.received_at - sentAt.get(m.text))
		.sort((a, b) => a - b)
	const figures = {
		accepted_per_s: messages / (acceptedMs / 1000),
		decrypted_per_s: messages / Math.max((last - firstSent) / 1000, 1e-9),
		latency_p50_ms: percentile(latencies, 0.5),
		latency_p99_ms: percentile(latencies, 0.99)
	}
	say(
		`  sent ${messages}: ${figures.decrypted_per_s.toFixed(0)} messages/s decrypted, ` +
			`p50 ${figures.latency_p50_ms.toFixed(0)} ms, p99 ${figures.latency_p99_ms.toFixed(0)} ms`
	)
	return figures
}

async function main() {
	const rootKey = await controlCall('GET', '/root-key')
	WA_CERT_DETAILS.PUBLIC_KEY = Buffer.from(rootKey.hex, 'hex')
	if (rootKey.serial !== undefined) WA_CERT_DETAILS.SERIAL = rootKey.serial
	await controlCall('POST', '/phones', { number: RECIPIENT, devices: 1 })
	await controlCall('POST', '/phones', { number: ONE_SENDER_RECIPIENT, devices: 1 })

	say(`baileys: ${args.sessions} sockets, ${args.messages} messages, ${args.senders} senders`)
	const before = rssKiB()
	const sockets = []
	const started = Date.now()
	const pairing = 16
	for (let i = 0; i < args.sessions; i += pairing) {
		const batch = []
		for (let j = i; j < Math.min(i + pairing, args.sessions); j++) {
			batch.push(pairedSocket(`1555200${String(j).padStart(4, '0')}`))
		}
		sockets.push(...(await Promise.all(batch)))
	}
	say(`  paired ${sockets.length} sockets in ${((Date.now() - started) / 1000).toFixed(1)} s`)
	await new Promise((r) => setTimeout(r, 3000))
	const kibPerSession = (rssKiB() - before) / sockets.length
	say(`  ${kibPerSession.toFixed(0)} KiB resident per connected socket`)

	// A round that fails is reported as null, so the figures that were measured still print.
	const round = (senders, recipient, messages) =>
		sendRound(senders, recipient, messages).catch((error) => {
			say(`  did not finish: ${error.message} (${reconnects} reconnects so far)`)
			return null
		})
	const oneSender =
		args.oneSenderMessages > 0 ? await round(sockets.slice(0, 1), ONE_SENDER_RECIPIENT, args.oneSenderMessages) : null
	const senders = Math.max(1, Math.min(args.senders, sockets.length))
	const aggregate = await round(sockets.slice(0, senders), RECIPIENT, args.messages)
	say(
		'BENCH_JSON ' +
			JSON.stringify({
				client: 'baileys',
				sessions: sockets.length,
				kib_per_session: kibPerSession,
				senders,
				one_sender: oneSender,
				aggregate,
				reconnects
			})
	)
	for (const { sock } of sockets) sock.end(undefined)
	process.exit(0)
}

main().catch((error) => {
	console.error(error)
	process.exit(1)
})
