// Upstream for the gRPC unary workload: a @grpc/grpc-js server (cleartext HTTP/2) with one unary
// method, /bench.Echo/Unary. Messages are raw bytes (identity (de)serializers, no protobuf
// runtime): a call whose request is not exactly the bench's request message fails with
// INVALID_ARGUMENT, every other call gets the fixed reply. Prints "port N" once listening and
// "calls ok=N bad=M" when asked on stdin ("count\n").
// usage: node grpc-server.js <request hex> <reply hex>
import grpc from '@grpc/grpc-js';
import readline from 'node:readline';

const [reqHex, replyHex] = process.argv.slice(2);
if (!reqHex || !replyHex) {
  process.stderr.write('usage: grpc-server.js <request hex> <reply hex>\n');
  process.exit(2);
}
const REQUEST = Buffer.from(reqHex, 'hex');
const REPLY = Buffer.from(replyHex, 'hex');
const id = (b) => b;
const SERVICE = {
  Unary: { path: '/bench.Echo/Unary', requestStream: false, responseStream: false, requestSerialize: id, requestDeserialize: id, responseSerialize: id, responseDeserialize: id },
};

let ok = 0;
let bad = 0;
const server = new grpc.Server();
server.addService(SERVICE, {
  Unary(call, cb) {
    if (!REQUEST.equals(call.request)) {
      bad++;
      cb({ code: grpc.status.INVALID_ARGUMENT, details: `request of ${call.request.length} bytes differs from the bench's` });
      return;
    }
    ok++;
    cb(null, REPLY);
  },
});
server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, port) => {
  if (err) {
    process.stderr.write(`grpc-server: ${err.message}\n`);
    process.exit(2);
  }
  process.stdout.write(`port ${port}\n`);
});
readline.createInterface({ input: process.stdin }).on('line', (l) => {
  if (l.trim() === 'count') process.stdout.write(`calls ok=${ok} bad=${bad}\n`);
});
process.stdin.on('end', () => process.exit(0));
