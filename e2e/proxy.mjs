// A switchable TCP proxy between the browser and the server, to cut the
// connection mid-recording. Down: every relayed connection is reset (RST, so
// neither side waits on it) and new ones are reset as soon as they arrive;
// up: it relays again, on the same port.

import net from 'node:net';

export class Proxy {
  /** Listens on 127.0.0.1 (a free port) and relays to `targetPort` on 127.0.0.1. */
  static async start(targetPort) {
    const proxy = new Proxy(targetPort);
    await new Promise((resolve, reject) => {
      proxy.server.once('error', reject);
      proxy.server.listen(0, '127.0.0.1', resolve);
    });
    return proxy;
  }

  constructor(targetPort) {
    this.targetPort = targetPort;
    this.up = true;
    this.sockets = new Set();
    this.server = net.createServer((client) => this.relay(client));
  }

  get port() {
    return this.server.address().port;
  }

  relay(client) {
    client.on('error', () => {});
    if (!this.up) {
      client.resetAndDestroy();
      return;
    }
    const upstream = net.connect(this.targetPort, '127.0.0.1');
    upstream.on('error', () => client.destroy());
    client.on('error', () => upstream.destroy());
    for (const socket of [client, upstream]) {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
    }
    client.pipe(upstream);
    upstream.pipe(client);
  }

  /** Cuts every connection now and refuses new ones until `resume()`. */
  cut() {
    this.up = false;
    for (const socket of this.sockets) {
      try {
        socket.resetAndDestroy();
      } catch {
        socket.destroy();
      }
    }
    this.sockets.clear();
  }

  resume() {
    this.up = true;
  }

  close() {
    this.cut();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}
