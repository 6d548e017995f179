// Runs on the audio rendering thread: turns the microphone's float samples
// (mono, at the AudioContext's rate) into s16le frames of `frameSamples`
// samples (100 ms) and posts each one, with its RMS level, to the page.
// `{type: 'flush'}` posts what is left of the current frame (at stop), then
// `{type: 'flushed'}`.

class CaptureProcessor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    this.frameSamples = options.processorOptions.frameSamples;
    this.frame = new Int16Array(this.frameSamples);
    this.filled = 0;
    this.sumSquares = 0;
    this.stopped = false;
    this.port.onmessage = (event) => {
      if (event.data && event.data.type === 'flush') {
        this.emit();
        this.stopped = true;
        this.port.postMessage({ type: 'flushed' });
      }
    };
  }

  emit() {
    if (this.filled === 0) return;
    const samples = this.filled === this.frameSamples ? this.frame : this.frame.slice(0, this.filled);
    const rms = Math.sqrt(this.sumSquares / this.filled);
    this.port.postMessage({ type: 'frame', pcm: samples.buffer, rms }, [samples.buffer]);
    this.frame = new Int16Array(this.frameSamples);
    this.filled = 0;
    this.sumSquares = 0;
  }

  process(inputs) {
    if (this.stopped) return false;
    const input = inputs[0];
    // The node's input is mixed down to one channel (channelCount 1, explicit).
    const channel = input && input[0];
    if (channel) {
      for (let i = 0; i < channel.length; i++) {
        const x = Math.max(-1, Math.min(1, channel[i]));
        this.sumSquares += x * x;
        this.frame[this.filled++] = x < 0 ? Math.round(x * 0x8000) : Math.round(x * 0x7fff);
        if (this.filled === this.frameSamples) this.emit();
      }
    }
    return true;
  }
}

registerProcessor('auscult-capture', CaptureProcessor);
