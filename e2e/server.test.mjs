// End-to-end test of `cafeq serve` with the official OpenAI Node client.
//
// It starts the real binary ($CAFEQ_BIN) on a free loopback port with the
// model $CAFEQ_MODEL, waits for /health, then checks chat and text
// completions, plain and streamed: replies are non-empty, usage adds up, and
// a greedy (temperature 0) streamed reply equals the plain one. Run with
// `node --test` (see mk/server.mk: make test-e2e).

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import net from 'node:net';
import OpenAI from 'openai';

const BIN = process.env.CAFEQ_BIN;
const MODEL = process.env.CAFEQ_MODEL;
const STARTUP_MS = 60_000;

// freePort asks the OS for an unused loopback port. Another process could
// take it before cafeq binds it; startServer retries on that.
function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// startServer spawns `cafeq serve` and resolves once /health answers 200.
async function startServer() {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const proc = spawn(BIN, ['serve', '-m', MODEL, '-addr', `127.0.0.1:${port}`, '-parallel', '2'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    proc.stdout.on('data', (d) => { output += d; });
    proc.stderr.on('data', (d) => { output += d; });
    let exited = null;
    proc.on('exit', (code, signal) => { exited = { code, signal }; });
    proc.on('error', (err) => { exited = { code: null, signal: null, err }; });

    const deadline = Date.now() + STARTUP_MS;
    while (Date.now() < deadline && !exited) {
      try {
        const res = await fetch(`http://127.0.0.1:${port}/health`);
        if (res.status === 200) {
          const body = await res.json();
          assert.equal(body.status, 'ok');
          return { proc, port, output: () => output, exited: () => exited };
        }
      } catch {
        // not listening yet
      }
      await sleep(100);
    }
    if (!exited) {
      proc.kill('SIGKILL');
      throw new Error(`cafeq serve did not become healthy in ${STARTUP_MS} ms:\n${output}`);
    }
    if (attempt < 3 && /address already in use/i.test(output)) {
      continue;
    }
    throw new Error(`cafeq serve exited early (${JSON.stringify(exited)}):\n${output}`);
  }
}

describe('cafeq serve', { timeout: 300_000 }, () => {
  let server;
  let client;

  before(async () => {
    assert.ok(BIN, 'set CAFEQ_BIN to the cafeq binary');
    assert.ok(MODEL, 'set CAFEQ_MODEL to a model directory or .cq file');
    server = await startServer();
    client = new OpenAI({
      baseURL: `http://127.0.0.1:${server.port}/v1`,
      apiKey: 'unused', // the server has no authentication; the client insists on a key
      maxRetries: 0,
      timeout: 120_000,
    });
  });

  after(async () => {
    if (!server || server.exited()) return;
    // SIGTERM must shut the server down cleanly, with exit status 0.
    const exit = new Promise((resolve) => server.proc.on('exit', (code, signal) => resolve({ code, signal })));
    server.proc.kill('SIGTERM');
    let timer;
    const timeout = new Promise((resolve) => { timer = setTimeout(() => resolve(null), 20_000); });
    const res = await Promise.race([exit, timeout]);
    clearTimeout(timer);
    if (res === null) {
      server.proc.kill('SIGKILL');
      assert.fail(`cafeq serve did not exit within 20 s of SIGTERM:\n${server.output()}`);
    }
    assert.deepEqual(res, { code: 0, signal: null }, `unclean exit after SIGTERM:\n${server.output()}`);
    if (process.env.CAFEQ_E2E_VERBOSE) console.log(server.output());
  });

  test('lists the model', async () => {
    const models = [];
    for await (const m of client.models.list()) models.push(m);
    assert.equal(models.length, 1);
    assert.equal(models[0].object, 'model');
    assert.ok(models[0].id.length > 0);
    const one = await client.models.retrieve(models[0].id);
    assert.equal(one.id, models[0].id);
  });

  const chatParams = {
    model: 'cafeq',
    messages: [
      { role: 'system', content: 'Answer as a character of the play.' },
      { role: 'user', content: 'Who art thou, and whence comest thou?' },
    ],
    temperature: 0,
    seed: 7,
    max_tokens: 32,
  };

  test('chat completion, plain and streamed, agree', async () => {
    const plain = await client.chat.completions.create(chatParams);
    assert.equal(plain.object, 'chat.completion');
    assert.match(plain.id, /^chatcmpl-/);
    assert.equal(plain.choices.length, 1);
    const choice = plain.choices[0];
    assert.equal(choice.message.role, 'assistant');
    assert.equal(typeof choice.message.content, 'string');
    assert.ok(choice.message.content.length > 0, 'empty chat reply');
    assert.ok(['stop', 'length'].includes(choice.finish_reason), choice.finish_reason);
    const u = plain.usage;
    assert.ok(u.prompt_tokens > 0 && u.completion_tokens > 0);
    assert.equal(u.total_tokens, u.prompt_tokens + u.completion_tokens);
    assert.ok(u.completion_tokens <= chatParams.max_tokens);

    const stream = await client.chat.completions.create({ ...chatParams, stream: true, stream_options: { include_usage: true } });
    let text = '';
    let role = null;
    let finish = null;
    let usage = null;
    let chunks = 0;
    for await (const chunk of stream) {
      chunks++;
      assert.equal(chunk.object, 'chat.completion.chunk');
      if (chunk.usage) usage = chunk.usage;
      if (chunk.choices.length === 0) continue;
      const c = chunk.choices[0];
      if (c.delta.role) role = c.delta.role;
      if (c.delta.content) text += c.delta.content;
      if (c.finish_reason) finish = c.finish_reason;
    }
    assert.ok(chunks > 2, `only ${chunks} chunks`);
    assert.equal(role, 'assistant');
    assert.equal(text, choice.message.content, 'streamed greedy reply differs from the plain one');
    assert.equal(finish, choice.finish_reason);
    assert.deepEqual(
      { p: usage.prompt_tokens, c: usage.completion_tokens },
      { p: u.prompt_tokens, c: u.completion_tokens },
    );
  });

  test('text completion, plain and streamed, agree', async () => {
    const params = { model: 'cafeq', prompt: 'ROMEO:\n', temperature: 0, max_tokens: 24 };
    const plain = await client.completions.create(params);
    assert.equal(plain.object, 'text_completion');
    const text = plain.choices[0].text;
    assert.ok(text.length > 0, 'empty completion');
    assert.ok(['stop', 'length'].includes(plain.choices[0].finish_reason));

    const stream = await client.completions.create({ ...params, stream: true });
    let streamed = '';
    let finish = null;
    for await (const chunk of stream) {
      streamed += chunk.choices[0]?.text ?? '';
      finish = chunk.choices[0]?.finish_reason ?? finish;
    }
    assert.equal(streamed, text, 'streamed greedy completion differs from the plain one');
    assert.equal(finish, plain.choices[0].finish_reason);
  });

  test('a stop string ends the reply before it', async () => {
    const params = { model: 'cafeq', prompt: 'ROMEO:\n', temperature: 0, max_tokens: 24 };
    const full = (await client.completions.create(params)).choices[0].text;
    const stop = full.slice(Math.floor(full.length / 2), Math.floor(full.length / 2) + 2);
    if (stop.length < 2) return; // reply too short to cut
    const cut = await client.completions.create({ ...params, stop: [stop] });
    assert.equal(cut.choices[0].text, full.slice(0, full.indexOf(stop)));
    assert.equal(cut.choices[0].finish_reason, 'stop');
  });

  test('logprobs come back in OpenAI\'s shapes', async () => {
    const chat = await client.chat.completions.create({ ...chatParams, logprobs: true, top_logprobs: 3 });
    const entries = chat.choices[0].logprobs.content;
    assert.equal(entries.length, chat.usage.completion_tokens);
    const bytes = entries.flatMap((e) => e.bytes);
    assert.equal(Buffer.from(bytes).toString('utf8'), chat.choices[0].message.content);
    for (const e of entries) {
      assert.ok(e.logprob <= 0 && e.top_logprobs.length === 3);
      // greedy: the chosen token is the most likely one
      assert.ok(Math.abs(e.top_logprobs[0].logprob - e.logprob) < 1e-6, JSON.stringify(e));
    }
    const text = await client.completions.create({ model: 'cafeq', prompt: 'ROMEO:\n', temperature: 0, max_tokens: 8, logprobs: 2 });
    const lp = text.choices[0].logprobs;
    assert.equal(lp.tokens.length, 8);
    assert.equal(lp.token_logprobs.length, 8);
    assert.equal(Object.keys(lp.top_logprobs[0]).length, 2);
  });

  test('response_format json_schema gives a reply that parses and matches', async () => {
    const schema = {
      type: 'object',
      properties: { name: { type: 'string' }, age: { type: 'integer' }, mood: { enum: ['merry', 'sad'] } },
      required: ['name', 'age', 'mood'],
      additionalProperties: false,
    };
    // The test model knows plays, not JSON: a bias towards the bytes that
    // close values and towards the stop tokens lets its replies end.
    const ids = (await (await fetch(`http://127.0.0.1:${server.port}/tokenize`, {
      method: 'POST', body: JSON.stringify({ content: '"}' }),
    })).json()).tokens;
    const logit_bias = Object.fromEntries([...ids, 1, 5].map((id) => [String(id), 6]));
    const r = await client.chat.completions.create({
      ...chatParams, max_tokens: 200, logit_bias,
      response_format: { type: 'json_schema', json_schema: { name: 'person', schema, strict: true } },
    });
    assert.equal(r.choices[0].finish_reason, 'stop', r.choices[0].message.content);
    const v = JSON.parse(r.choices[0].message.content);
    assert.deepEqual(Object.keys(v).sort(), ['age', 'mood', 'name']);
    assert.ok(Number.isInteger(v.age) && typeof v.name === 'string' && ['merry', 'sad'].includes(v.mood));
  });

  test('fields the server cannot honour are refused, naming them', async () => {
    for (const [extra, param] of [
      [{ tools: [{ type: 'function', function: { name: 'f', parameters: {} } }] }, 'tools'],
      [{ n: 2 }, 'n'],
      [{ response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { anyOf: [] } } } }, 'response_format.json_schema.schema'],
    ]) {
      await assert.rejects(
        client.chat.completions.create({ ...chatParams, ...extra }),
        (err) => err instanceof OpenAI.BadRequestError && err.param === param,
      );
    }
  });

  test('bad requests get OpenAI-style 4xx errors', async () => {
    await assert.rejects(
      client.chat.completions.create({ ...chatParams, temperature: 5 }),
      (err) => err instanceof OpenAI.BadRequestError && err.status === 400 && err.param === 'temperature',
    );
    await assert.rejects(
      client.chat.completions.create({ ...chatParams, messages: [{ role: 'tool', content: 'x', tool_call_id: 'a' }] }),
      (err) => err instanceof OpenAI.BadRequestError && /role/.test(err.message),
    );
    const res = await fetch(`http://127.0.0.1:${server.port}/health`);
    assert.equal(res.status, 200);
  });
});
