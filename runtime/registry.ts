/**
 * Looks up the handlers that `app.*` / `df.app.*` registrations handed to the functions-core stand-in.
 */
import { registeredFunctions, RegisteredFunction } from './functionsCore';

export type TriggerType =
  | 'orchestrationTrigger'
  | 'activityTrigger'
  | 'httpTrigger'
  | 'timerTrigger'
  | 'eventGridTrigger'
  | 'storageQueueTrigger';

/** The binding type @azure/functions writes for a trigger, where it differs from the name used here. */
const BINDING_TYPES: Partial<Record<TriggerType, string>> = {
  storageQueueTrigger: 'queueTrigger', // app.storageQueue / df.app.client.storageQueue
};

function bindingType(triggerType: TriggerType): string {
  return BINDING_TYPES[triggerType] ?? triggerType;
}

export function findFunction(name: string, triggerType: TriggerType): RegisteredFunction {
  const fn = registeredFunctions().get(name);
  if (!fn) {
    const hint =
      registeredFunctions().size === 0
        ? ' (nothing is registered: was @azure/functions loaded before installFunctionsCore()?)'
        : '';
    throw new Error(`no function named ${name} is registered${hint}`);
  }
  if (fn.trigger.type !== bindingType(triggerType)) throw new Error(`function ${name} is a ${fn.trigger.type}, not a ${bindingType(triggerType)}`);
  return fn;
}

export function functionsByTrigger(triggerType: TriggerType): RegisteredFunction[] {
  return [...registeredFunctions().values()].filter((f) => f.trigger.type === bindingType(triggerType));
}
