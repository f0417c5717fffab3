// @ts-check
/** The portal's only way to the server: same-origin JSON calls of the public HTTP API (cookie or EasyAuth session). */

/** A refused or failed call, with the problem document's title and detail when the server sent one. */
export class ApiError extends Error {
  /**
   * @param {number} status
   * @param {string} title
   * @param {string} detail
   */
  constructor(status, title, detail) {
    super(detail ? `${title}: ${detail}` : title);
    this.status = status;
    this.title = title;
  }
}

/**
 * @param {Response} response
 * @returns {Promise<any>}
 */
async function answerOf(response) {
  const text = await response.text();
  /** @type {any} */
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = null;
  }
  if (!response.ok) {
    const title = body && typeof body.title === 'string' ? body.title : `HTTP ${response.status}`;
    const detail = body && typeof body.detail === 'string' ? body.detail : '';
    throw new ApiError(response.status, title, detail);
  }
  return body;
}

/** @param {string} path */
export async function getJson(path) {
  return answerOf(await fetch(path, { credentials: 'same-origin', headers: { Accept: 'application/json' }, cache: 'no-store' }));
}

/**
 * @param {string} path
 * @param {unknown} body
 * @param {Record<string, string>} [headers]
 */
export async function postJson(path, body, headers = {}) {
  const response = await fetch(path, {
    method: 'POST',
    credentials: 'same-origin',
    headers: { 'Content-Type': 'application/json', Accept: 'application/json', ...headers },
    body: JSON.stringify(body),
  });
  return answerOf(response);
}
