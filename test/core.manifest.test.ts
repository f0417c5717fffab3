/** Manifests (core/repo/manifest.ts): canonical JSON. */
import { canonicalJson } from '../core/repo/manifest';

test('canonical JSON sorts keys at every level', () => {
  expect(canonicalJson({ b: 1, a: [{ d: 'x', c: null }], e: true })).toBe('{"a":[{"c":null,"d":"x"}],"b":1,"e":true}');
});
