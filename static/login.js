// The login form (POST /v1/auth/login), shown when GET /v1/auth/me says 401.

import * as api from './api.js';
import { byId, showMessage } from './dom.js';

export class LoginView {
  constructor({ onLogin }) {
    this.onLogin = onLogin;
    this.els = {
      form: byId('login-form'),
      username: byId('login-username'),
      password: byId('login-password'),
      submit: byId('login-submit'),
      message: byId('login-message'),
    };
    this.els.form.addEventListener('submit', (event) => {
      event.preventDefault();
      this.submit();
    });
  }

  /** Shows the form, with an optional message (why the user must sign in again). */
  show(message = '', kind = 'info') {
    showMessage(this.els.message, message, kind);
    this.els.password.value = '';
    this.els.submit.disabled = false;
    (this.els.username.value ? this.els.password : this.els.username).focus();
  }

  async submit() {
    const username = this.els.username.value.trim();
    const password = this.els.password.value;
    if (!username || !password) {
      showMessage(this.els.message, 'Enter your user name and password.');
      (username ? this.els.password : this.els.username).focus();
      return;
    }
    this.els.submit.disabled = true;
    try {
      const answer = await api.login(username, password);
      this.els.password.value = '';
      showMessage(this.els.message, '');
      await this.onLogin({ user: answer.user, via: 'cookie' });
    } catch (error) {
      let text;
      if (error.status === 401) text = 'The user name or password is not right.';
      else if (error.status === 429) {
        const wait = error.retryAfter ? ` in ${error.retryAfter} seconds` : ' later';
        text = `Too many failed attempts. Try again${wait}.`;
      } else text = `Signing in failed: ${error.message}`;
      showMessage(this.els.message, text);
      this.els.password.select();
      this.els.password.focus();
    } finally {
      this.els.submit.disabled = false;
    }
  }
}
