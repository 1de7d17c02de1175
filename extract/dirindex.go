package extract

// dirIndex is a set of directory names that also records, for every name in
// it, the chain of its parents. Removing a name then walks only the subtree
// below it. A layer that replaces many directories one by one so costs time
// linear in its entries, not one pass over every record per replacement.
type dirIndex struct {
	names map[string]struct{}
	// children maps a name to the names one level below it that are
	// recorded or lead to a recorded name. "" is the root.
	children map[string]map[string]struct{}
	// visits counts the records that remove dropped, for tests.
	visits int
}

func newDirIndex() dirIndex {
	return dirIndex{
		names:    map[string]struct{}{},
		children: map[string]map[string]struct{}{},
	}
}

// has reports whether name is in the set.
func (x *dirIndex) has(name string) bool {
	_, ok := x.names[name]
	return ok
}

// add puts name, a cleaned relative name, in the set.
func (x *dirIndex) add(name string) {
	x.names[name] = struct{}{}
	// Link name to its parents up to the first link that already exists:
	// every linked name has its whole chain of parents linked.
	for name != "" {
		parent, _ := splitName(name)
		kids := x.children[parent]
		if kids == nil {
			kids = map[string]struct{}{}
			x.children[parent] = kids
		}
		if _, ok := kids[name]; ok {
			return
		}
		kids[name] = struct{}{}
		name = parent
	}
}

// remove takes name and every name below it out of the set.
func (x *dirIndex) remove(name string) {
	if name == "" {
		clear(x.names)
		clear(x.children)
		return
	}
	parent, _ := splitName(name)
	if kids := x.children[parent]; kids != nil {
		delete(kids, name)
		if len(kids) == 0 {
			delete(x.children, parent)
		}
	}
	stack := []string{name}
	for len(stack) > 0 {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		kids, linked := x.children[n]
		if _, ok := x.names[n]; ok || linked {
			x.visits++
		}
		delete(x.names, n)
		for kid := range kids {
			stack = append(stack, kid)
		}
		delete(x.children, n)
	}
}
