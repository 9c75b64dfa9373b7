import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ParamSpec, Params, validateParams, normalizeDescription, formatF64, Column } from '../src/index.js';

const description = {
  name: 'T',
  version: '0.1.0',
  summary: 's',
  params: [
    ParamSpec.int('period', 14, { min: 2, max: 100, step: 1, help: 'bars' }),
    ParamSpec.float('level', 30, { min: 1, max: 50 }),
    ParamSpec.bool('short', false),
  ],
  columns: [Column.Close],
};

test('ParamSpec builds the schema entry', () => {
  assert.deepEqual(ParamSpec.int('period', 14, { min: 2, max: 100, step: 1, help: 'bars' }), {
    name: 'period', kind: 'int', default: 14, min: 2, max: 100, step: 1, help: 'bars',
  });
  assert.deepEqual(ParamSpec.bool('b', true), { name: 'b', kind: 'bool', default: true, min: null, max: null, step: null, help: '' });
});

test('normalizeDescription fills in columns and rejects bad schemas', () => {
  const d = normalizeDescription({ name: 'n', version: '1', summary: '' });
  assert.deepEqual(d.columns, ['ts', 'open', 'high', 'low', 'close', 'volume']);
  assert.deepEqual(d.params, []);
  assert.throws(() => normalizeDescription({ ...description, columns: ['nope'] }), /unknown column/);
  assert.throws(() => normalizeDescription({ ...description, params: [ParamSpec.int('x', 1.5)] }), /integer/);
  assert.throws(() => normalizeDescription({ ...description, params: [ParamSpec.int('x', 1), ParamSpec.int('x', 2)] }), /twice/);
  assert.throws(() => normalizeDescription({ ...description, params: [ParamSpec.bool('x', 1)] }), /boolean/);
});

test('Params accessors and their errors (the Rust SDK messages)', () => {
  const p = Params.defaults(description);
  assert.equal(p.int('period'), 14);
  assert.equal(p.float('level'), 30);
  assert.equal(p.float('period'), 14, 'an int widens to float');
  assert.equal(p.bool('short'), false);
  assert.throws(() => p.int('missing'), { message: 'param `missing` is missing' });
  assert.throws(() => p.int('level'), { message: 'param `level` must be int, got Float(30.0)' });
  assert.throws(() => p.bool('period'), { message: 'param `period` must be bool, got Int(14)' });
  assert.throws(() => p.float('short'), { message: 'param `short` must be float, got Bool(false)' });
  const q = p.with('period', 'int', 5n);
  assert.equal(q.int('period'), 5);
  assert.equal(p.int('period'), 14, 'with() copies');
  assert.deepEqual(q.toObject(), { period: 5, level: 30, short: false });
});

test('validateParams: defaults, types, bounds, unknown names', () => {
  assert.deepEqual(validateParams(description, {}).toObject(), { period: 14, level: 30, short: false });
  assert.deepEqual(validateParams(description, { period: '20', level: 2.5, short: 'yes' }).toObject(), {
    period: 20, level: 2.5, short: true,
  });
  assert.throws(() => validateParams(description, { period: 1 }), {
    message: 'param `period` = 1 is out of range: below its minimum 2',
  });
  assert.throws(() => validateParams(description, { level: 50.5 }), {
    message: 'param `level` = 50.5 is out of range: above its maximum 50',
  });
  assert.throws(() => validateParams(description, { period: 2.5 }), /must be int/);
  assert.throws(() => validateParams(description, { level: NaN }), /must be float/);
  assert.throws(() => validateParams(description, { short: 2 }), /must be bool/);
  assert.throws(() => validateParams(description, { nope: 1 }), /unknown param `nope` \(known: period, level, short\)/);
});

test('formatF64 prints like Rust Display', () => {
  assert.equal(formatF64(50), '50');
  assert.equal(formatF64(0.1), '0.1');
  assert.equal(formatF64(NaN), 'NaN');
  assert.equal(formatF64(1e21), '1000000000000000000000');
  assert.equal(formatF64(1.5e-7), '0.00000015');
  assert.equal(formatF64(-2.5e22), '-25000000000000000000000');
  assert.equal(formatF64(Infinity), 'inf');
});
