// Renders web/icons/icon.svg to the PNG icons the web app manifest lists (192, 512, maskable
// 512), with Debian's chromium through playwright-core. Run after editing the SVG:
//   node scripts/make-icons.mjs
import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const svg = fs.readFileSync(path.join(root, 'web/icons/icon.svg'), 'utf8');
const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu'],
});
const page = await browser.newPage();
for (const [name, size, padding] of [['icon-192.png', 192, 0], ['icon-512.png', 512, 0], ['icon-maskable-512.png', 512, 0.1]]) {
    await page.setViewportSize({ width: size, height: size });
    const inner = Math.round(size * (1 - 2 * padding));
    // Maskable icons keep their content inside the central 80% safe zone.
    await page.setContent(`<body style="margin:0;background:#15171c;display:grid;place-items:center;height:${size}px">` +
        `<div style="width:${inner}px;height:${inner}px">${svg.replace('<svg ', `<svg width="${inner}" height="${inner}" `)}</div></body>`);
    await page.screenshot({ path: path.join(root, 'web/icons', name), omitBackground: padding === 0 });
}
await browser.close();
