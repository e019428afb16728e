/** A list response the AIP-158 way: items under one key, and the token of the next page. */
type ListResponse<K extends string> = { nextPageToken: string } & { [P in K]: unknown[] };

/**
 * Every page of a list, followed from the first until next_page_token is empty: the first
 * response with `key` holding all items (other fields, e.g. a rotation schedule, come from it).
 * A page may be short or empty while more follow, so only the token says when to stop.
 */
export async function allPages<K extends string, R extends ListResponse<K>>(key: K, fetch: (pageToken: string) => Promise<R>): Promise<R> {
  const first = await fetch('');
  const items = [...first[key]];
  let token = first.nextPageToken;
  while (token !== '') {
    const page = await fetch(token);
    // A server that hands back the token it was given would otherwise keep us here forever.
    if (page.nextPageToken === token) throw new Error(`the server returned the same page token twice while listing ${key}`);
    items.push(...page[key]);
    token = page.nextPageToken;
  }
  return { ...first, [key]: items, nextPageToken: '' };
}
