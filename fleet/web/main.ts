// The line dashboard's page: Fleet, Camera, Review and Actions over one WebSocket (store.ts).

import { html, render } from 'htm/preact';
import { useEffect } from 'preact/hooks';
import './style.css';
import { ActionsPage } from './pages/actions.ts';
import { CameraPage } from './pages/camera.ts';
import { FleetPage } from './pages/fleet.ts';
import { LoginPage } from './pages/login.ts';
import { ReviewPage } from './pages/review.ts';
import { api, connect, disconnect, markPainted, navigate, useStore } from './store.ts';

function Header() {
  const s = useStore();
  const bad = s.fleet?.malformed.reduce((a, r) => a + r.count, 0) ?? 0;
  const logout = async () => {
    await api('/api/logout', {});
    disconnect();
    navigate({ page: 'login' });
  };
  return html`<header>
    <b>EdgePrompt</b> line dashboard
    <nav>
      <a href="#/" class=${s.route.page === 'fleet' ? 'active' : ''}>Fleet</a>
      <a href="#/review" class=${s.route.page === 'review' ? 'active' : ''}>Review</a>
      <a href="#/actions" class=${s.route.page === 'actions' ? 'active' : ''}>Actions</a>
    </nav>
    ${bad ? html`<a href="#/" class="badge ng" title="malformed messages on the broker">${bad} malformed</a>` : ''}
    <span class="spacer"></span>
    <span class=${`dot ${s.connected ? 'online' : 'offline'}`} data-testid="connection" title=${s.connected ? 'live' : 'reconnecting'}></span>
    ${s.hello ? html`<span class="muted" data-testid="user">${s.hello.user.name} (${s.hello.user.role})</span>` : ''}
    ${s.hello?.auth ? html`<button onClick=${() => void logout()}>Sign out</button>` : ''}
  </header>`;
}

function App() {
  const s = useStore();
  // Effects run after the browser painted: the results shown in this render are now visible.
  useEffect(() => markPainted());
  const page = s.route.page === 'login' ? html`<${LoginPage} />` : s.route.page === 'camera' ? html`<${CameraPage} />` : s.route.page === 'actions' ? html`<${ActionsPage} />` : s.route.page === 'review' ? html`<${ReviewPage} />` : html`<${FleetPage} />`;
  return html`<${Header} /><main>${page}</main>`;
}

async function start() {
  const me = await fetch('/api/me');
  if (me.status === 401) navigate({ page: 'login' });
  else connect();
  render(html`<${App} />`, document.getElementById('app')!);
}

void start();
