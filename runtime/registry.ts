/**
 * Looks up the handlers that `app.*` / `df.app.*` registrations handed to the functions-core stand-in.
 */
import { registeredFunctions, RegisteredFunction } from './functionsCore';

export type TriggerType =
  | 'orchestrationTrigger'
  | 'activityTrigger'
  | 'httpTrigger'
  | 'timerTrigger'
  | 'eventGridTrigger';

export function findFunction(name: string, triggerType: TriggerType): RegisteredFunction {
  const fn = registeredFunctions().get(name);
  if (!fn) {
    const hint =
      registeredFunctions().size === 0
        ? ' (nothing is registered: was @azure/functions loaded before installFunctionsCore()?)'
        : '';
    throw new Error(`no function named ${name} is registered${hint}`);
  }
  if (fn.trigger.type !== triggerType) throw new Error(`function ${name} is a ${fn.trigger.type}, not a ${triggerType}`);
  return fn;
}

export function functionsByTrigger(triggerType: TriggerType): RegisteredFunction[] {
  return [...registeredFunctions().values()].filter((f) => f.trigger.type === triggerType);
}
