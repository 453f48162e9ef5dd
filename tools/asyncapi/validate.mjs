// Parse an AsyncAPI document with the AsyncAPI project's own parser (@asyncapi/parser, the
// one its CLI and generator use) and print what a test needs to compare it with the code:
// every diagnostic, then each channel's address and exchange and each message's name and
// resolved payload title. Exit status 1 when the document is invalid.
import { Parser, fromFile } from '@asyncapi/parser';

const path = process.argv[2];
const parser = new Parser();
const { document, diagnostics } = await fromFile(parser, path).parse();
const summary = {
  diagnostics: diagnostics.map((d) => ({
    severity: d.severity,
    code: d.code,
    message: d.message,
    path: d.path.join('.'),
  })),
  channels: [],
  messages: [],
};
if (document) {
  for (const channel of document.channels()) {
    const amqp = channel.bindings().get('amqp');
    summary.channels.push({
      address: channel.address(),
      exchange: amqp ? amqp.value().exchange : null,
      messages: channel.messages().all().map((m) => m.name()),
    });
  }
  for (const message of document.allMessages()) {
    const payload = message.payload();
    summary.messages.push({
      name: message.name(),
      contentType: message.contentType(),
      payloadTitle: payload ? payload.title() : null,
      payloadRequired: payload ? payload.required() : null,
    });
  }
}
console.log(JSON.stringify(summary, null, 2));
process.exit(document ? 0 : 1);
