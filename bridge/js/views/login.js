import { api, setToken } from '../api.js';
import { h, replace, showError } from '../ui.js';
import { navigate, showVersion } from '../app.js';

export async function loginView(main) {
  const input = h('input', { id: 'token', type: 'password', name: 'token', autocomplete: 'current-password', required: true });
  const status = h('div', { 'aria-live': 'polite' });
  const form = h('form', { class: 'card login', onsubmit: async (event) => {
    event.preventDefault();
    try {
      await api('/v1/auth', { method: 'POST', tokenOverride: input.value.trim() });
      setToken(input.value.trim());
      showVersion();
      const next = new URLSearchParams(location.search).get('next') || '/';
      navigate(next.startsWith('/') && !next.startsWith('/login') ? next : '/', { replaceState: true });
    } catch (error) {
      showError(error.status === 401 ? new Error('This API token is not valid.') : error, status);
      input.focus();
    }
  } },
    h('h1', {}, 'Log in to Keelson'),
    h('p', { class: 'muted' }, 'Paste the API token (x-token). It is kept in this browser tab only.'),
    h('label', { for: 'token' }, 'API token'),
    input,
    status,
    h('button', { type: 'submit', class: 'primary' }, 'Log in'));
  replace(main, form);
  input.focus();
}
