"""A preload script for Node servers (NODE_OPTIONS=--require): Node's fetch and http modules
ignore HTTP(S)_PROXY, so the hook asks the guard about each request before it leaves, HTTPS
included, since it sees the request before it is encrypted. It is a tripwire for servers that
do not try to evade it, not a sandbox: code that opens raw sockets goes around it."""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

HOOK_JS = r"""
'use strict';
(function () {
  const guardUrl = process.env.TURNOUT_EGRESS_URL;
  if (!guardUrl) return;
  const http = require('http');
  const https = require('https');
  const guard = new URL(guardUrl);
  const rawRequest = http.request;
  const rawFetch = globalThis.fetch;
  // One kept-alive connection to the guard: a verdict per request without a TCP handshake each.
  // Idle kept-alive sockets are unref'd by Node, so they never keep a server from exiting.
  const askAgent = new http.Agent({ keepAlive: true, maxSockets: 4 });

  function isGuard(host, port) {
    return (host === guard.hostname || host === '127.0.0.1' && guard.hostname === 'localhost')
      && String(port) === guard.port;
  }

  function ask(shape) {
    return new Promise((resolve) => {
      const payload = Buffer.from(JSON.stringify(shape));
      const req = rawRequest({
        host: guard.hostname, port: guard.port, path: guard.pathname, method: 'POST',
        agent: askAgent,
        headers: {'content-type': 'application/json', 'content-length': payload.length},
      }, (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => {
          try { resolve(JSON.parse(Buffer.concat(chunks).toString())); }
          catch (e) { resolve({allow: false, reason: 'unreadable verdict'}); }
        });
      });
      // Fail closed: no verdict, no request.
      req.on('error', (e) => resolve({allow: false,
                                      reason: 'egress guard unreachable: ' + e.message}));
      req.end(payload);
    });
  }

  function shape(method, url, body, contentType) {
    return {method: method || 'GET', url: String(url), body: body == null ? null : String(body),
            contentType: contentType || null};
  }

  if (typeof rawFetch === 'function') {
    globalThis.fetch = async function (input, init) {
      const request = new Request(input, init);
      const u = new URL(request.url);
      // data:, blob: and file: URLs never leave the machine.
      if ((u.protocol !== 'http:' && u.protocol !== 'https:')
          || isGuard(u.hostname, u.port || (u.protocol === 'https:' ? 443 : 80))) {
        return rawFetch(input, init);
      }
      const body = request.body ? await request.clone().text() : null;
      const verdict = await ask(shape(request.method, request.url, body,
                                      request.headers.get('content-type')));
      if (!verdict.allow) throw new TypeError('turnout egress guard refused: ' + verdict.reason);
      return rawFetch(request);
    };
  }

  function wrap(mod, scheme) {
    const original = mod.request;
    mod.request = function (...args) {
      const req = original.apply(this, args);
      let target;
      try {
        const opts = typeof args[0] === 'string' || args[0] instanceof URL
          ? Object.assign(new URL(String(args[0])), typeof args[1] === 'object' ? args[1] : {})
          : (args[0] || {});
        const host = opts.hostname || opts.host || 'localhost';
        const port = opts.port || (scheme === 'https' ? 443 : 80);
        if (isGuard(host, port)) return req;
        const path = opts.path || ((opts.pathname || '/') + (opts.search || ''));
        const portPart = String(port) === (scheme === 'https' ? '443' : '80') ? '' : ':' + port;
        target = {method: opts.method || req.method || 'GET',
                  url: scheme + '://' + String(host).split(':')[0] + portPart + path};
      } catch (e) {
        return req;
      }
      const chunks = [];
      const write = req.write.bind(req);
      const end = req.end.bind(req);
      req.write = function (chunk, enc, cb) {
        if (chunk) chunks.push(Buffer.from(chunk, typeof enc === 'string' ? enc : undefined));
        const done = typeof enc === 'function' ? enc : cb;
        if (done) process.nextTick(done);
        return true;
      };
      req.end = function (chunk, enc, cb) {
        if (typeof chunk === 'function') { cb = chunk; chunk = null; }
        if (typeof enc === 'function') { cb = enc; enc = undefined; }
        if (chunk) chunks.push(Buffer.from(chunk, typeof enc === 'string' ? enc : undefined));
        const body = Buffer.concat(chunks);
        ask(shape(target.method, target.url, body.length ? body.toString() : null,
                  req.getHeader('content-type'))).then((verdict) => {
          if (!verdict.allow) {
            req.destroy(new Error('turnout egress guard refused: ' + verdict.reason));
            return;
          }
          if (body.length) write(body);
          end(cb);
        });
        return req;
      };
      return req;
    };
    mod.get = function (...args) { const r = mod.request(...args); r.end(); return r; };
  }
  wrap(http, 'http');
  wrap(https, 'https');
})();
"""


def hook_path() -> Path:
    """The hook written once per content to the temp dir, so NODE_OPTIONS can name it."""
    digest = hashlib.sha256(HOOK_JS.encode()).hexdigest()[:16]
    path = Path(tempfile.gettempdir()) / f"turnout-egress-hook-{digest}.cjs"
    if not path.exists():
        tmp = path.with_suffix(".tmp")
        tmp.write_text(HOOK_JS, encoding="utf-8")
        tmp.replace(path)
    return path
