/** GET /api/me: who the caller is — `{ name, roles, via }` — so a page knows which actions to offer (401 when nobody signed in). */
import { app, HttpResponse } from '@azure/functions';
import { apiAuthLevel } from '../auth/authMode';
import { requireSignedIn } from '../auth/principal';
import { problemFromError } from '../problems';
import { assertKnownQuery } from './responses';

app.http('me', {
  route: 'me',
  methods: ['GET'],
  authLevel: apiAuthLevel(),
  handler: async (request, context) => {
    try {
      const who = requireSignedIn(request);
      assertKnownQuery(request, []);
      return new HttpResponse({ status: 200, jsonBody: { id: who.id, name: who.name, roles: who.roles, via: who.via }, headers: { 'Cache-Control': 'no-store' } });
    } catch (err) {
      return problemFromError(err, { context });
    }
  },
});
