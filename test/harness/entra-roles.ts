/** The Entra app-role values of SPEC18 (infra/README.md's app registration manifest must declare exactly these). */
export const ROLE_VALUES = ['Pagewise.Reader', 'Pagewise.Operator', 'Pagewise.Restorer', 'Pagewise.Admin'] as const;
