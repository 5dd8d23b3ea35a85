// The event feed's parameters and answers (GET /fmsg/events), with the API's error texts.
import { z } from "zod";
import { count } from "./fields.ts";

export const MAX_FEED_WAIT_SECONDS = 60;

export const EventsQuery = z.object({
  since: count({
    name: "since",
    dflt: null,
    description: "The cursor: answer events with a higher seq (the `next` of the previous answer). Absent: from now (the current head). 0: from the oldest event ever (410 once any was pruned).",
  }),
  timeout: count({ name: "timeout", dflt: 25, max: MAX_FEED_WAIT_SECONDS, description: "Seconds to wait when nothing is there yet, 0–60 (0 answers at once). Ignored by the event stream." }),
});

export const EventsHeaders = z.object({
  "last-event-id": count({
    name: "Last-Event-ID",
    dflt: null,
    description: "Event stream only: resume after this seq (what the browser's EventSource sends on reconnect). Wins over `since`.",
  }),
});

export const FeedEvent = z
  .object({
    seq: z.number().int().min(1).meta({ description: "The event's place in the host-wide, monotonic sequence." }),
    kind: z.enum(["new_msg", "recipients_added", "delivered", "read"]).meta({
      description:
        "new_msg: the message became visible to you (sent to you, delivered to you, you were added). recipients_added: recipients were added to a message you take part in. delivered / read: a recipient got / read your message.",
    }),
    id: z.number().int().min(1).meta({ description: "The message id." }),
  })
  .meta({ id: "FeedEvent" });

export const EventPage = z
  .object({
    events: z.array(FeedEvent).meta({ description: "Oldest first; at most 500. Empty when the timeout passed." }),
    next: z.number().int().min(0).meta({ description: "The cursor for the next call: the last seq returned, or the one given when nothing was." }),
  })
  .meta({ id: "EventPage" });
