// Entry point of a dataset worker thread: worker threads do not inherit the main thread's TypeScript loader,
// so register it here, then load the worker itself.
import { register } from 'tsx/esm/api';

register();
await import('./worker.ts');
