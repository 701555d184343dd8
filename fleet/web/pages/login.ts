// Sign in (a dashboard that is not bound to localhost requires it).

import { html } from 'htm/preact';
import { useState } from 'preact/hooks';
import { api, connect, navigate, parseRoute } from '../store.ts';

export function LoginPage() {
  const [name, setName] = useState('');
  const [password, setPassword] = useState('');
  const [error, setError] = useState<string | null>(null);
  const submit = async (e: Event) => {
    e.preventDefault();
    const r = await api<{ message?: string }>('/api/login', { name, password });
    if (r.status !== 200) return setError(r.data?.message ?? `sign-in failed (${r.status})`);
    navigate(parseRoute(location.hash));
    connect();
  };
  return html`<form class="login" onSubmit=${submit} data-testid="login">
    <h2>Sign in</h2>
    <label>user <input name="name" autocomplete="username" value=${name} onInput=${(e: Event) => setName((e.target as HTMLInputElement).value)} /></label>
    <label>password <input name="password" type="password" autocomplete="current-password" value=${password} onInput=${(e: Event) => setPassword((e.target as HTMLInputElement).value)} /></label>
    <button>Sign in</button>
    ${error ? html`<p class="ng" data-testid="login-error">${error}</p>` : ''}
  </form>`;
}
