/**
 * Starts a bench script the way it should be measured: from the TypeScript sources (npm run …) it reruns
 * itself from a plain-JavaScript build on bare node, as the engine ships (bench/lib/build.ts rerunCompiled);
 * already built, or with --sources, it runs `main` here. Kept apart from build.ts, which loads the TypeScript
 * compiler: the built run must not.
 */
export async function startBuilt(scriptFile: string, argv: string[], main: () => Promise<void>): Promise<void> {
  if (scriptFile.endsWith('.ts') && !argv.includes('--sources')) {
    const { rerunCompiled } = await import('./build');
    process.exit(await rerunCompiled(scriptFile, argv));
  }
  await main();
}
