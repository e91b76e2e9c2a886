// One socket.io-client 4 connection to a botwave node, for tests/api/socket_io.rs.
// Environment: BOTWAVE_URL (the node), TRANSPORT (websocket | polling), CREDENTIAL (a login
// token or an API key; empty: do not authenticate). Prints one JSON line per thing that
// happens: {"event":"connect","transport":…}, {"event":<name>,"payload":…} for every event
// the server emits, {"event":"disconnect","reason":…}. Exits after the disconnect, or when
// stdin closes (the test is done with it). Reads commands from stdin (below).
import { io } from "socket.io-client";

const print = (line) => process.stdout.write(JSON.stringify(line) + "\n");
const socket = io(process.env.BOTWAVE_URL, {
  transports: [process.env.TRANSPORT],
  reconnection: false,
  timeout: 10000,
});

socket.on("connect", () => {
  print({ event: "connect", transport: socket.io.engine.transport.name });
  if (process.env.CREDENTIAL) {
    socket.emit("authenticate", process.env.CREDENTIAL);
  }
});
socket.onAny((event, payload) => print({ event, payload }));
socket.on("connect_error", (error) => print({ event: "connect_error", message: String(error) }));
socket.on("disconnect", (reason) => {
  print({ event: "disconnect", reason, transport: socket.io.engine?.transport?.name ?? null });
  setTimeout(() => process.exit(0), 50);
});
// Commands, one per line: "pause" stops reading from the connection (a client too slow to keep
// up), "resume" reads again.
let pending = "";
process.stdin.on("data", (chunk) => {
  pending += chunk;
  let newline;
  while ((newline = pending.indexOf("\n")) >= 0) {
    const command = pending.slice(0, newline).trim();
    pending = pending.slice(newline + 1);
    const connection = socket.io.engine?.transport?.ws?._socket;
    if (command === "pause") connection?.pause();
    if (command === "resume") connection?.resume();
    print({ event: "command", command, applied: Boolean(connection) });
  }
});
process.stdin.on("end", () => {
  socket.close();
  process.exit(0);
});
process.stdin.resume();
