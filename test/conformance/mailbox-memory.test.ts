/** The Mailbox conformance suite on the in-process implementation (one MemoryMailboxHub per test). */
import { MAILBOX_GROUP } from '../../runtime/mailbox/redis/keys';
import { MemoryMailbox, MemoryMailboxHub, memoryMailboxKeys } from '../../runtime/mailbox/memory/memory-mailbox';
import { describeMailboxConformance } from './mailbox.suite';

describeMailboxConformance('memory', async () => {
  const hub = new MemoryMailboxHub();
  const keys = memoryMailboxKeys;
  return {
    mailbox: async (options) => new MemoryMailbox(hub, { heartbeatMs: 1000, ...options }),
    inboxLength: async (address) => hub.length(keys.inbox(address)),
    pendingCount: async (address) => hub.pendingCount(keys.inbox(address), MAILBOX_GROUP),
    replyLength: async (clientId) => hub.length(keys.replies(clientId)),
    replyStreamExists: async (clientId) => hub.exists(keys.replies(clientId)),
    deleteReplyStream: async (clientId) => {
      hub.delete(keys.replies(clientId));
    },
    trimSlack: 0,
    cleanup: async () => undefined,
  };
});
