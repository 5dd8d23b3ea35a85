// Limits of the fmsg protocol and of this host that several layers enforce.

/** Addresses in a `to` list and in one add-to batch (the wire carries the count in one byte). */
export const MAX_RECIPIENTS = 255;
/** The documented total of add-to recipients per message, over all its batches. */
export const MAX_ADD_TO_TOTAL = 1000;
/** `topic`, in UTF-8 bytes. */
export const MAX_TOPIC_BYTES = 255;
/** Attachments per message. */
export const MAX_ATTACHMENTS = 255;
