// The Node baseline teams write today: one `ws` server, every client in a
// set, each POST /pub body sent to every client.
//   node server.js PORT [deflate]
// With `deflate`, permessage-deflate as `ws` offers it (perMessageDeflate,
// context takeover, deflated per connection; 256-byte threshold as
// livegate's default).
'use strict';
const http = require('node:http');
const { WebSocketServer } = require('ws');

const port = Number(process.argv[2] || 9102);
const deflate = process.argv[3] === 'deflate';
const clients = new Set();
const server = http.createServer((req, res) => {
  if (req.method !== 'POST' || req.url !== '/pub') {
    res.writeHead(404).end();
    return;
  }
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const body = Buffer.concat(chunks).toString('utf8');
    for (const ws of clients) ws.send(body);
    res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
  });
});
const wss = new WebSocketServer({
  server,
  path: '/sub',
  perMessageDeflate: deflate ? { threshold: 256 } : false,
});
wss.on('connection', (ws) => {
  clients.add(ws);
  ws.on('close', () => clients.delete(ws));
  ws.on('error', () => clients.delete(ws));
});
server.listen(port, '127.0.0.1', () => console.log(`node-ws listening on ${port}`));
