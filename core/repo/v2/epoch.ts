/** The key-epoch check of §14 without a keyring (a worker thread holds only the keys its task needs): no heavy imports. */
import { PagewiseError } from '../../errors';

/** Refuses an object of an epoch a holder of epochs 0…`held` lacks; `what` names the object. */
export function requireEpochOf(held: number, epoch: number, what: string): void {
  if (!Number.isInteger(epoch) || epoch < 0 || epoch > held) {
    throw new PagewiseError('WrongKey', `${what} was written with a newer master key epoch ${epoch} than this key's slot holds (epochs 0 to ${held}); use a key with a slot of epoch ${epoch} or later`);
  }
}
