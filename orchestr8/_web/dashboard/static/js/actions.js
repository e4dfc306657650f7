// Mounted by the execution page; filled in by its own slice.

export function mount(page, container) {
  void page;
  void container;
}
