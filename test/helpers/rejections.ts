/** The Rejection a promise fails with (anything else is rethrown; success is a test failure). */
import { Rejection } from '../../protocol/rejections.ts';

export async function rejectionOf(p: Promise<unknown>): Promise<Rejection> {
  try {
    await p;
  } catch (e) {
    if (e instanceof Rejection) return e;
    throw e;
  }
  throw new Error('expected a rejection');
}
