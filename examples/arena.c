/* arena.c - example: a region pool (arena) for many small objects.
 *
 * Splits a text into words, keeps each word in a list node allocated from an
 * arena: one pointer bump per object, no free per object. A child arena holds
 * scratch data for one pass and goes away with a reset of its parent. At the
 * end one call gives every page back.
 */
#include <stdio.h>
#include <string.h>
#include "memkit.h"
#include "memkit/pool.h"

struct word {
	struct word *next;
	const char *text;
	size_t len;
};

static const char text[] =
    "avoid many small heap allocations use memory pools as much as possible free "
    "automatically and share memory between processes by mapping one file";

static struct word *split_words(mk_arena_t *a, const char *s)
{
	struct word *head = NULL, **tail = &head;
	while (*s) {
		size_t n = strcspn(s, " ");
		if (n) {
			struct word *w = mk_arena_alloc(a, sizeof(*w));
			char *copy = mk_arena_alloc_aligned(a, n + 1, 1);
			if (!w || !copy)
				return NULL;
			memcpy(copy, s, n);
			copy[n] = '\0';
			*w = (struct word){.text = copy, .len = n};
			*tail = w;
			tail = &w->next;
		}
		s += n + (s[n] == ' ');
	}
	return head;
}

static void print_stats(const char *when, const mk_arena_t *a)
{
	struct mk_arena_stats st;
	mk_arena_stats(a, &st);
	printf("%-22s objects %4llu  requested %6zu B  used %6zu B  reserved %6zu B  "
	       "blocks %zu  children %zu\n",
	       when, (unsigned long long)st.allocs, st.requested_bytes, st.used_bytes,
	       st.reserved_bytes, st.blocks, st.children);
}

int main(void)
{
	mk_arena_t *a = mk_arena_create(&(struct mk_arena_opts){.name = "words"});
	if (!a)
		return perror("mk_arena_create"), 1;
	struct word *words = split_words(a, text);
	size_t count = 0, longest = 0;
	for (struct word *w = words; w; w = w->next, count++)
		longest = w->len > longest ? w->len : longest;
	printf("%zu words, the longest has %zu letters\n", count, longest);
	print_stats("after splitting:", a);

	/* scratch work in a child arena: an upper-case copy of every word */
	mk_arena_t *scratch = mk_arena_create(&(struct mk_arena_opts){.parent = a});
	for (int round = 0; round < 100; round++)
		for (struct word *w = words; w; w = w->next) {
			char *up = mk_arena_strdup(scratch, w->text);
			for (char *c = up; c && *c; c++)
				*c = (char)(*c - 32 * (*c >= 'a' && *c <= 'z'));
		}
	print_stats("child (scratch):", scratch);
	print_stats("parent with child:", a);

	mk_arena_reset(a); /* forgets the words, destroys the child, keeps pages */
	print_stats("after reset:", a);
	words = split_words(a, text);
	print_stats("same work again:", a);
	mk_arena_destroy(a);
	printf("arena destroyed: all its pages are back in the buddy system\n");
	return words ? 0 : 1;
}
