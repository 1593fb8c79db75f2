// Contract check: drive the OZmap simulator with the official SDK (@ozmap/ozmap-sdk).
// Usage: OZMAP_URL=http://127.0.0.1:PORT OZMAP_KEY=key CLIENT_CODE=X node sdk_contract.js
// Prints one JSON line per step ("step" + facts) and a final {"ok": true, ...} line; exits 1
// with {"ok": false, "step", "error"} on the first failure.
'use strict';

// The SDK's logger would open a log HTTP server on :9898 and print debug lines: silence both.
process.env.OZLOGGER_HTTP = process.env.OZLOGGER_HTTP || 'false';
process.env.OZLOGGER_LEVEL = process.env.OZLOGGER_LEVEL || 'error';

const sdkModule = require('@ozmap/ozmap-sdk');
const { z } = require('zod');

const OZMapSDK = sdkModule.default;
// The SDK's PoleSchema says kind "POLE"; the API's documented example and the SDK's own
// base-point enum say "Pole", which is what the simulator serves: accept both, check the rest.
const PoleSchema = sdkModule.PoleSchema.extend({ kind: z.enum(['Pole', 'POLE']) });
const SCHEMAS = {
  Box: sdkModule.BoxSchema,
  Splitter: sdkModule.SplitterSchema,
  Pole: PoleSchema,
  PoleType: sdkModule.PoleTypeSchema,
  Project: sdkModule.ProjectSchema,
  Property: sdkModule.PropertySchema,
  FTTHClient: sdkModule.FTTHClientSchema,
  Cable: sdkModule.CableSchema,
};
const parsed = {};

// Every object must pass the SDK's schema for its kind (the first failure names the object).
function conform(kind, objects) {
  for (const obj of objects) {
    const res = SCHEMAS[kind].safeParse(obj);
    if (!res.success) {
      throw new Error(`${kind} ${obj && obj.id} fails the SDK schema: ${res.error.message}`);
    }
  }
  parsed[kind] = (parsed[kind] || 0) + objects.length;
}

const url = process.env.OZMAP_URL;
const apiKey = process.env.OZMAP_KEY;
const code = process.env.CLIENT_CODE || `SDK-${process.pid}`;
let step = 'init';

function check(cond, message) {
  if (!cond) throw new Error(message);
}

function log(obj) {
  process.stdout.write(JSON.stringify({ step, ...obj }) + '\n');
}

function describe(err) {
  if (err && err.status) return `HTTP ${err.status}: ${JSON.stringify(err.data)}`;
  return String((err && (err.stack || err.message)) || err);
}

async function main() {
  check(url && apiKey, 'OZMAP_URL and OZMAP_KEY must be set');
  const sdk = new OZMapSDK(url, { apiKey });

  step = 'find-page';
  const page1 = await sdk.box.find({ page: 1, limit: 5 });
  check(page1.rows.length === 5 && page1.total > 5, `page 1: ${page1.rows.length}/${page1.total}`);
  check(page1.hasNextPage === true && typeof page1.nextUrl === 'string', 'hasNextPage/nextUrl');
  const page2 = await sdk.box.find({ page: 2, limit: 5 });
  check(page2.rows[0].id !== page1.rows[0].id, 'page 2 repeats page 1');
  log({ total: page1.total, nextUrl: page1.nextUrl });

  step = 'find-all';
  const all = await sdk.box.findAll({ batchSize: 40 });
  const ids = new Set(all.map((b) => b.id));
  check(all.length === page1.total, `findAll got ${all.length} of ${page1.total}`);
  check(ids.size === all.length, 'findAll returned duplicates');
  log({ rows: all.length });

  step = 'filter';
  const project = all[0].project;
  const inProject = await sdk.box.findAll({
    batchSize: 50,
    filter: [
      { property: 'project', operator: '=', value: project },
      { property: 'draft', operator: '=', value: false },
    ],
  });
  check(inProject.length > 0, 'no boxes in project');
  check(inProject.every((b) => b.project === project && b.draft === false), 'filter not applied');
  const centre = inProject[0];
  const near = await sdk.box.find({
    limit: 50,
    filter: [
      {
        property: 'coords',
        operator: 'near',
        value: { lat: String(centre.lat), lng: String(centre.lng), radius: 1500 },
      },
    ],
  });
  check(near.rows.length > 0 && near.rows[0].id === centre.id, 'near: the centre box first');
  log({ project, inProject: inProject.length, near: near.total });

  step = 'schemas';
  conform('Box', all);
  conform('Project', (await sdk.project.find({ limit: 100 })).rows);
  conform('Splitter', (await sdk.splitter.find({ limit: 200 })).rows);
  conform('Property', (await sdk.property.find({ limit: 200 })).rows);
  conform('FTTHClient', (await sdk.ftthClient.find({ limit: 200 })).rows);
  conform('Cable', (await sdk.cable.find({ limit: 200 })).rows);
  conform('PoleType', (await sdk.poleType.find({ limit: 10 })).rows);
  conform('Pole', (await sdk.pole.find({ limit: 500 })).rows);
  const poleOfBox = await sdk.pole.findById(centre.pole);
  check(poleOfBox && poleOfBox.coords[0] === centre.coords[0], 'the box stands on its pole');
  const nearPoles = await sdk.pole.find({
    limit: 50,
    filter: [
      {
        property: 'coords',
        operator: 'near',
        value: { lat: String(centre.lat), lng: String(centre.lng), radius: 200 },
      },
    ],
  });
  check(nearPoles.rows.length > 0 && nearPoles.rows[0].id === centre.pole, 'near poles');
  conform('Pole', nearPoles.rows);
  for (const adj of poleOfBox.adjacents) {
    const other = await sdk.pole.findById(adj);
    check(other.adjacents.includes(poleOfBox.id), `adjacency of ${adj} not symmetric`);
  }
  log({ parsed });

  step = 'choose-port';
  let chosen = null;
  for (const box of inProject) {
    const spl = await sdk.splitter.find({
      limit: 20,
      filter: [
        { property: 'parent', operator: '=', value: box.id },
        { property: 'isDrop', operator: '=', value: true },
      ],
    });
    for (const s of spl.rows) {
      const i = s.connectables.output.findIndex((f, j) => f === null && !s.ports[j].blocked);
      if (i >= 0) {
        chosen = { box, splitter: s, port: i + 1 };
        break;
      }
    }
    if (chosen) break;
  }
  check(chosen, 'no free port found');
  log({ box: chosen.box.id, splitter: chosen.splitter.id, port: chosen.port });

  step = 'create-property';
  const created = await sdk.property.create({
    project,
    box: chosen.box.id,
    coords: [chosen.box.lng + 0.0004, chosen.box.lat + 0.0003],
    address: 'Rua do Contrato, 42',
    client: { code, name: 'Cliente SDK', implanted: false },
    connector: chosen.splitter.id,
    port: chosen.port,
  });
  check(created && created.id && created.client && created.drop, 'created property lacks ids');
  check(created.connections[0].port === chosen.port, 'connection port');
  const spl = await sdk.splitter.findById(chosen.splitter.id);
  const fiber = spl.connectables.output[chosen.port - 1];
  check(fiber === created.connections[0].fiber, 'splitter port does not hold the new fiber');
  conform('Property', [await sdk.property.findById(created.id)]);
  conform('Cable', [await sdk.cable.findById(created.drop)]);
  log({ property: created.id, client: created.client, drop: created.drop, fiber });

  step = 'occupied-refused';
  let refused = null;
  try {
    await sdk.property.create({
      project,
      box: chosen.box.id,
      client: { code: `${code}-dup`, implanted: false },
      connector: chosen.splitter.id,
      port: chosen.port,
    });
  } catch (err) {
    refused = err;
  }
  check(refused && refused.status >= 400 && refused.status < 500, 'occupied port not refused');
  log({ status: refused.status, message: refused.data && refused.data.message });

  step = 'find-by-code';
  const byCode = (await sdk.apiInstance.get({ route: `properties/client/${encodeURIComponent(code)}` }));
  check(Array.isArray(byCode) && byCode.length === 1 && byCode[0].id === created.id, 'by code');
  conform('Property', byCode);
  check(byCode[0].client.code === code, 'by code: the FTTH client is populated');
  const client = await sdk.ftthClient.findOne({
    filter: [{ property: 'code', operator: '=', value: code }],
  });
  check(client && client.id === created.client && client.implanted === false, 'client by filter');
  log({ properties: byCode.length, client: client.id });

  step = 'patch-client';
  await sdk.ftthClient.updateById(client.id, { implanted: true, name: 'Cliente SDK Ativo' });
  const patched = await sdk.ftthClient.findById(client.id);
  check(patched.implanted === true && patched.name === 'Cliente SDK Ativo', 'patch not applied');
  check(patched.updatedAt > client.updatedAt, 'updatedAt not advanced');
  await sdk.ftthClient.batchUpdate([{ property: 'code', operator: '=', value: code }], {
    certified: true,
  });
  const batched = await sdk.ftthClient.findById(client.id);
  check(batched.certified === true, 'batch-update not applied');
  log({ implanted: patched.implanted, certified: batched.certified });

  step = 'delete-property';
  await sdk.property.deleteById(created.id);
  check((await sdk.property.findById(created.id)) === null, 'property still there');
  check((await sdk.ftthClient.findById(client.id)) === null, 'client still there');
  check((await sdk.cable.findById(created.drop)) === null, 'drop cable still there');
  const freed = await sdk.splitter.findById(chosen.splitter.id);
  check(freed.connectables.output[chosen.port - 1] === null, 'port not freed');
  const gone = await sdk.apiInstance.get({ route: `properties/client/${encodeURIComponent(code)}` });
  check(Array.isArray(gone) && gone.length === 0, 'by code after delete');
  log({ freed: true });

  step = 'login-mode';
  const viaLogin = new OZMapSDK(url, { login: 'integracao', password: apiKey });
  const one = await viaLogin.box.find({ limit: 1 });
  check(one.rows.length === 1, 'login mode could not read');
  log({ rows: one.rows.length });

  step = 'done';
  log({ ok: true, parsed });
}

main()
  .then(() => process.exit(0))
  .catch((err) => {
    process.stdout.write(JSON.stringify({ ok: false, step, error: describe(err) }) + '\n');
    process.exit(1);
  });
