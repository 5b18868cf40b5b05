// A public function with a scalar argument: no C interface.
func.func @f(%x: f32) -> f32 {
  return %x : f32
}
