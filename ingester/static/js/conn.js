// WebSocket connection with reconnect (1.5 s, doubling to 10 s, reset on open).

export class Connection {
  constructor(url, { onMessage, onState }) {
    this.url = url;
    this.onMessage = onMessage;
    this.onState = onState;
    this.state = 'connecting';
    this.delay = 1500;
    this.ws = null;
  }

  open() {
    this.setState('connecting');
    let ws;
    try {
      ws = new WebSocket(this.url);
    } catch {
      this.setState('error');
      this.retry();
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      this.delay = 1500;
      this.setState('open');
    };
    ws.onmessage = (e) => this.onMessage(e.data);
    ws.onerror = () => this.setState('error');
    ws.onclose = () => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.setState('closed');
      this.retry();
    };
  }

  retry() {
    const d = this.delay;
    this.delay = Math.min(10000, this.delay * 2);
    setTimeout(() => this.open(), d);
  }

  setState(s) {
    this.state = s;
    this.onState(s);
  }
}
