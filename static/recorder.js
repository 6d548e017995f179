// Microphone capture: getUserMedia with the browser's voice processing off
// (echo cancellation, noise suppression and automatic gain distort clinical
// speech and the recording), an AudioContext at the chosen sample rate (the
// browser resamples the microphone to it), and an AudioWorklet that hands
// back s16le frames of 100 ms.

const WORKLET_URL = new URL('./capture-worklet.js', import.meta.url);

/** Why the microphone could not be used, as a message for the clinician. */
export class MicrophoneError extends Error {
  constructor(kind, message) {
    super(message);
    this.kind = kind;
  }
}

function microphoneError(error) {
  switch (error && error.name) {
    case 'NotAllowedError':
    case 'SecurityError':
      return new MicrophoneError('refused',
        'Microphone access was refused. Allow the microphone for this site (the icon in the address bar) and press Start again.');
    case 'NotFoundError':
    case 'OverconstrainedError':
      return new MicrophoneError('missing', 'No microphone was found. Connect one and press Start again.');
    case 'NotReadableError':
    case 'AbortError':
      return new MicrophoneError('busy',
        'The microphone could not be opened: another application may be using it.');
    default:
      return new MicrophoneError('failed', `The microphone could not be opened (${(error && error.name) || 'unknown error'}).`);
  }
}

export class Recorder {
  /**
   * Opens the microphone and starts capturing at `rate` Hz.
   * `onFrame(arrayBuffer)` gets each s16le frame, `onLevel(0..1)` the level,
   * `onEnded()` runs if the microphone goes away while recording.
   */
  static async start({ rate, onFrame, onLevel = () => {}, onEnded = () => {} }) {
    if (!window.isSecureContext || !navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      throw new MicrophoneError('insecure', 'The microphone is only available over HTTPS (or on localhost).');
    }
    if (typeof AudioWorkletNode === 'undefined') {
      throw new MicrophoneError('unsupported', 'This browser cannot capture audio here: use a current Chrome, Edge, Firefox or Safari.');
    }
    let media;
    try {
      media = await navigator.mediaDevices.getUserMedia({
        audio: {
          channelCount: { ideal: 1 },
          echoCancellation: false,
          noiseSuppression: false,
          autoGainControl: false,
        },
        video: false,
      });
    } catch (error) {
      throw microphoneError(error);
    }
    const recorder = new Recorder(media);
    try {
      await recorder.open(rate, onFrame, onLevel);
    } catch (error) {
      await recorder.stop();
      if (error instanceof MicrophoneError) throw error;
      throw new MicrophoneError('failed', `Audio capture could not start at ${rate / 1000} kHz (${error.name || error}).`);
    }
    for (const track of media.getAudioTracks()) {
      track.addEventListener('ended', () => onEnded());
    }
    return recorder;
  }

  constructor(media) {
    this.media = media;
    this.context = null;
    this.node = null;
    this.flushed = null;
  }

  /** The rate frames are captured at (the AudioContext's). */
  get sampleRate() {
    return this.context ? this.context.sampleRate : 0;
  }

  async open(rate, onFrame, onLevel) {
    try {
      this.context = new AudioContext({ sampleRate: rate, latencyHint: 'interactive' });
    } catch {
      throw new MicrophoneError('rate', `This browser cannot record at ${rate / 1000} kHz: choose another audio quality.`);
    }
    await this.context.audioWorklet.addModule(WORKLET_URL);
    const source = this.context.createMediaStreamSource(this.media);
    this.node = new AudioWorkletNode(this.context, 'auscult-capture', {
      numberOfInputs: 1,
      numberOfOutputs: 1,
      outputChannelCount: [1],
      channelCount: 1,
      channelCountMode: 'explicit',
      channelInterpretation: 'speakers',
      processorOptions: { frameSamples: Math.round(this.context.sampleRate / 10) },
    });
    let resolveFlushed;
    this.flushed = new Promise((resolve) => { resolveFlushed = resolve; });
    this.node.port.onmessage = (event) => {
      const msg = event.data;
      if (msg.type === 'frame') {
        onFrame(msg.pcm);
        // -60 dBFS (silence) .. 0 dBFS (full scale) onto 0..1.
        const db = 20 * Math.log10(Math.max(msg.rms, 1e-6));
        onLevel(Math.max(0, Math.min(1, (db + 60) / 60)));
      } else if (msg.type === 'flushed') {
        resolveFlushed();
      }
    };
    source.connect(this.node);
    // The node's output is silence; connecting it keeps the graph pulling it.
    this.node.connect(this.context.destination);
    await this.context.resume();
  }

  /** Stops capturing; every sample captured so far has been handed to onFrame. */
  async stop() {
    if (this.node) {
      this.node.port.postMessage({ type: 'flush' });
      await Promise.race([this.flushed, new Promise((resolve) => setTimeout(resolve, 1000))]);
      this.node.disconnect();
      this.node = null;
    }
    for (const track of this.media.getTracks()) track.stop();
    if (this.context && this.context.state !== 'closed') await this.context.close();
  }
}
