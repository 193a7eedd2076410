package chainfire

import "context"

// MemberToken exposes memberToken to the external tests.
func (s *Server) MemberToken(ctx context.Context) (string, error) { return s.memberToken(ctx) }
