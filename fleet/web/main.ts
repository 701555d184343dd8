// The line dashboard's page: Fleet, Camera, Review and Actions over one WebSocket (store.ts).

import { html, render } from 'htm/preact';
import './style.css';
import { ActionsPage } from './pages/actions.ts';
import { CameraPage } from './pages/camera.ts';
import { FleetPage } from './pages/fleet.ts';
import { LoginPage } from './pages/login.ts';
import { ReviewPage } from './pages/review.ts';
import { api, connect, disconnect, navigate, useStore } from './store.ts';

function Header() {
  const route = useStore((s) => s.route);
  const connected = useStore((s) => s.connected);
  const hello = useStore((s) => s.hello);
  const bad = useStore((s) => s.fleet?.malformed.reduce((a, r) => a + r.count, 0) ?? 0);
  const logout = async () => {
    await api('/api/logout', {});
    disconnect();
    navigate({ page: 'login' });
  };
  return html`<header>
    <b>EdgePrompt</b> line dashboard
    <nav>
      <a href="#/" class=${route.page === 'fleet' ? 'active' : ''}>Fleet</a>
      <a href="#/review" class=${route.page === 'review' ? 'active' : ''}>Review</a>
      <a href="#/actions" class=${route.page === 'actions' ? 'active' : ''}>Actions</a>
    </nav>
    ${bad ? html`<a href="#/" class="badge ng" title="malformed messages on the broker">${bad} malformed</a>` : ''}
    <span class="spacer"></span>
    <span class=${`dot ${connected ? 'online' : 'offline'}`} data-testid="connection" title=${connected ? 'live' : 'reconnecting'}></span>
    ${hello ? html`<span class="muted" data-testid="user">${hello.user.name} (${hello.user.role})</span>` : ''}
    ${hello?.auth ? html`<button onClick=${() => void logout()}>Sign out</button>` : ''}
  </header>`;
}

function App() {
  const page = useStore((s) => s.route.page);
  const body = page === 'login' ? html`<${LoginPage} />` : page === 'camera' ? html`<${CameraPage} />` : page === 'actions' ? html`<${ActionsPage} />` : page === 'review' ? html`<${ReviewPage} />` : html`<${FleetPage} />`;
  return html`<${Header} /><main>${body}</main>`;
}

async function start() {
  const me = await fetch('/api/me');
  if (me.status === 401) navigate({ page: 'login' });
  else connect();
  render(html`<${App} />`, document.getElementById('app')!);
}

void start();
