import { describe, expect, it } from 'vitest';
import { messagePage, parseOutsideJson } from '../../src/console/wire.js';

describe('messagePage', () => {
  it('escapes its title and text', () => {
    const page = messagePage('<b>"x"</b>', "it's & <script>");
    expect(page).toContain('<title>&lt;b&gt;&quot;x&quot;&lt;/b&gt;</title>');
    expect(page).toContain('<p>it&#39;s &amp; &lt;script&gt;</p>');
    expect(page).not.toContain('<script>');
  });
});

describe('parseOutsideJson', () => {
  it.each([
    ['an object', '{"a":[1,true,null]}', { a: [1, true, null] }],
    ['not JSON', '{a:1}', undefined],
    ['nested past the hostile-input bound', `${'['.repeat(8_000)}${']'.repeat(8_000)}`, undefined],
  ])('%s', (_name, text, expected) => {
    expect(parseOutsideJson(Buffer.from(text))).toEqual(expected);
  });

  it('keeps a __proto__ key an own key', () => {
    const value = parseOutsideJson(Buffer.from('{"__proto__":{"polluted":1}}')) as Record<string, unknown>;
    expect(Object.keys(value)).toEqual(['__proto__']);
    expect(Object.getPrototypeOf(value)).not.toHaveProperty('polluted');
  });
});
