// The sink thread's entry when the gateway runs from source (npm start, the tests): a worker thread
// does not inherit the main thread's TypeScript loader, so it registers tsx itself before loading
// sink-thread-worker.ts. The compiled build starts sink-thread-worker.js directly.
const { register } = await import("tsx/esm/api");
register();
await import(new URL("./sink-thread-worker.ts", import.meta.url).href);
