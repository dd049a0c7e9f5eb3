// The help texts state what the reporter does (docs/module.md): embedded
// children send shutdown reasons, and GC events beyond 64 per tick wait for
// the next tick instead of being lost. Run: node --test ingester/static/tests/
import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { HELP_MD, GC_DROPPED_LABEL } from '../js/helptext.js';

const here = path.dirname(fileURLToPath(import.meta.url));

test('help: embedded children send shutdown reasons', () => {
  assert.doesNotMatch(HELP_MD, /send no reason/);
  const para = HELP_MD.split('\n').find((l) => l.startsWith('Embedded-mode Apache children'));
  assert.ok(para, 'no paragraph on embedded-mode reasons');
  for (const r of ['maximum_requests', 'graceful_signal', 'shutdown_signal']) assert.match(para, new RegExp(r));
});

test('help and GC status row: events past 64 per tick wait, only ring overflow is lost', () => {
  assert.match(HELP_MD, /64 collection events per interpreter per tick; the rest wait for the next tick/);
  assert.match(HELP_MD, /more than 256 are waiting are the oldest dropped/);
  assert.ok(HELP_MD.includes(GC_DROPPED_LABEL));
  assert.doesNotMatch(GC_DROPPED_LABEL, /not sent|cap 64/);
  // The GC tab shows the label from here, not a text of its own.
  const gc = fs.readFileSync(path.join(here, '../js/views/gc.js'), 'utf8');
  assert.match(gc, /\$\{GC_DROPPED_LABEL\}: \$\{dropped\}/);
  assert.doesNotMatch(gc, /not sent|cap 64/);
});
