/** The four Pagewise roles, their Entra app-role values and what each implies (admin ⊇ all; operator, restorer ⊇ reader). */

export const ROLES = ['reader', 'operator', 'restorer', 'admin'] as const;
export type Role = (typeof ROLES)[number];

/** The app-role values of the Entra app registration (infra/README.md), as they arrive in role claims. */
export const ENTRA_ROLE_VALUES: Readonly<Record<Role, string>> = {
  reader: 'Pagewise.Reader',
  operator: 'Pagewise.Operator',
  restorer: 'Pagewise.Restorer',
  admin: 'Pagewise.Admin',
};

const IMPLIES: Readonly<Record<Role, readonly Role[]>> = {
  reader: ['reader'],
  operator: ['operator', 'reader'],
  restorer: ['restorer', 'reader'],
  admin: ROLES,
};

/** Every role the given ones grant, in ROLES order. */
export function withImplied(roles: Iterable<Role>): Role[] {
  const granted = new Set<Role>();
  for (const role of roles) for (const implied of IMPLIES[role]) granted.add(implied);
  return ROLES.filter((r) => granted.has(r));
}

export function grants(roles: readonly Role[], needed: Role): boolean {
  return withImplied(roles).includes(needed);
}

/** The role an Entra app-role value stands for; undefined for a value that is not Pagewise's. */
export function roleOfEntraValue(value: string): Role | undefined {
  return ROLES.find((r) => ENTRA_ROLE_VALUES[r] === value);
}

export function isRole(value: unknown): value is Role {
  return typeof value === 'string' && (ROLES as readonly string[]).includes(value);
}
